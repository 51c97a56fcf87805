"""Stripe: the client, customers, saved cards, and the offline stand-ins."""
