"""Facts about Add credit, stated after commit (see billing/events.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CurrencyWithdrawn:
    """The organisation no longer offers Add credit in this currency."""

    currency: str


@dataclass(frozen=True, slots=True)
class TopUpCredited:
    """A top-up's payment was credited to its wallet (Add credit or an auto-recharge)."""

    top_up_id: int


@dataclass(frozen=True, slots=True)
class MoneyTakenBack:
    """A refund or dispute Stripe reported took money back from a wallet: the ledger entry
    with this transaction id."""

    transaction_id: str


@dataclass(frozen=True, slots=True)
class MoneyGivenBack:
    """A refund that failed at Stripe, or a dispute won, gave money back to a wallet: the
    ledger entry with this transaction id."""

    transaction_id: str
