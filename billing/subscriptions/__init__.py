"""Purchases of API products (subscriptions): the setup and first recurring fee at purchase,
the recurring fees after, cancellation."""
