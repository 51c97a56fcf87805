"""Wallets and their ledger entries: every balance change, exactly once."""
