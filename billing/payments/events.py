"""Facts about payments, stated after commit (see billing/events.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OfflineChargeSucceeded:
    """Offline, a saved test card was charged: Stripe's `payment_intent.succeeded` webhook
    follows, as it would online (its credit must not double the one the task makes)."""

    payment_intent_id: str
    amount: int  # minor units
    currency: str
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class CardSetupCompleted:
    """A setup-mode Checkout finished: a worker asks Stripe which card it saved."""

    account_id: int
    setup_intent_id: str
