"""The payer: billing account, billing details, effective billing type, organisation settings."""
