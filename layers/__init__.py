"""The layer catalog (data files + loader) and all SQL over layer tables."""
