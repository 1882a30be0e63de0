"""Identity and access: partner clients, console users, roles, scopes, tokens, tenant isolation."""
