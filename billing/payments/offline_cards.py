"""Offline stand-ins for saved cards (no STRIPE_SECRET_KEY): no Stripe call is made, and each
card's name says how it behaves when charged."""

from __future__ import annotations

import hashlib

OFFLINE_CARDS = {
    "pm_offline_visa_4242": ("visa", "4242", "succeed"),
    "pm_offline_mastercard_4444": ("mastercard", "4444", "succeed"),
    "pm_offline_visa_0002": ("visa", "0002", "card_declined"),
    "pm_offline_visa_3155": ("visa", "3155", "authentication_required"),
}


def offline_card_behaviour(payment_method_id: str) -> str:
    """ "succeed", "card_declined" or "authentication_required"; an unknown card is declined."""
    return OFFLINE_CARDS.get(payment_method_id, ("", "", "card_declined"))[2]


def offline_charge_intent_id(idempotency_key: str) -> str:
    """The same key gives the same PaymentIntent, as Stripe's idempotency does."""
    return "pi_offline_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
