"""Stripe webhooks: verify, store, process, answer (the dj-stripe way).

Nothing is stored or credited before the signature is verified against the raw body. Each event
is stored once under Stripe's id; processing runs in its own transaction and is idempotent, so a
duplicate delivery, a concurrent one or one out of order changes nothing twice.
"""
