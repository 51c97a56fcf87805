"""Auto-recharge: when a prepaid wallet falls below its threshold, charge the saved card
off-session, exactly once per need.

Exactly once: an attempt row is the claim (a partial unique index allows one in flight per
auto-recharge); the attempt keeps a random Stripe idempotency key of its own, so a retried or
repeated charge returns the same PaymentIntent; and the credit uses the PaymentIntent id as
ledger transaction id, so the webhook and the task may both see the success and the wallet is
credited once.
"""
