from __future__ import annotations


class BillingError(Exception):
    """A refused billing operation; the message is shown to the user as is."""


class BillingTypeConflict(BillingError):
    """The billing type changed since the admin looked at it."""


class InsufficientFunds(BillingError):
    """A prepaid debit would take the balance below the allowed floor."""


class TransactionConflict(BillingError):
    """A transaction id was already applied with another amount, currency, kind or developer."""


class NotFound(BillingError):
    """What was asked for does not exist (or is not offered): an API answers 404."""


class AlreadyExists(BillingError):
    """The thing to create exists already (a second open subscription): an API answers 409."""
