"""Enterprise consent (数据授权): grants, enforcement, access log."""
