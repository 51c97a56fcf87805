"""Add credit: limits, the top-up record, and what Stripe's confirmations do."""
