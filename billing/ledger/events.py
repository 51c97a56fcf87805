"""Facts the ledger states after its commit (see billing/events.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RechargeMayBeDue:
    """The wallet's balance may be below its auto-recharge threshold."""

    account_id: int
    currency: str
