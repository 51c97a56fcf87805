"""Changing a billing type, and the ledger entries it leaves (seed 004)."""
