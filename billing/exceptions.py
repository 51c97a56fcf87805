from __future__ import annotations


class BillingError(Exception):
    """A refused billing operation; the message is shown to the user as is."""


class BillingTypeConflict(BillingError):
    """The billing type changed since the admin looked at it."""
