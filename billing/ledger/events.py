"""Facts the ledger states after its commit (see billing/events.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RechargeMayBeDue:
    """The wallet's balance may be below its auto-recharge threshold."""

    account_id: int
    currency: str


@dataclass(frozen=True, slots=True)
class MoneyCredited:
    """Money came into a wallet that owes plan fees or usage (a top-up, a recharge, a credit
    through the API): they may be paid now."""

    account_id: int
    currency: str


@dataclass(frozen=True, slots=True)
class BalanceAlertsDue:
    """A debit took the balance to its armed low-balance alert, or a top-up re-arms them."""

    account_id: int
    currency: str
