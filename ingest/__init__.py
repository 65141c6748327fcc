"""Files to validated rows to COPY to an atomic swap into layer tables."""
