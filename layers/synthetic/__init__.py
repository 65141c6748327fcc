"""Generate a deterministic synthetic Huadu district: divisions, grid and base layers."""
