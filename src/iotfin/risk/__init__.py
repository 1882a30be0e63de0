"""Credit risk: features (entity, asset, transaction), models, grades, reasons, monitoring."""
