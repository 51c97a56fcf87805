"""Reads for the Add credit pages and settings."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from billing.models import AutoRecharge, BillingAccount, TopUp, TopUpLimit, Wallet
from billing.payments import stripe_gateway


def add_credit_rows(*, account: BillingAccount) -> list[dict]:
    """One row per currency on the balance page: every currency offered, and every wallet."""
    wallets = {w.currency: w for w in Wallet.objects.filter(billing_account=account)}
    offered = list(TopUpLimit.objects.values_list("currency", flat=True))
    currencies = list(dict.fromkeys([*wallets, *offered]))
    return [
        {"currency": c, "wallet": wallets.get(c), "can_add_credit": c in offered}
        for c in currencies
    ]


@dataclass(frozen=True)
class CurrencyRemoval:
    """A currency whose Add credit limits are about to be removed, and who notices."""

    currency: str
    auto_recharges_on: int  # developers whose auto-recharge in it stops
    wallets_with_money: int  # balances stay and can still be spent


def top_up_currency_removals(*, kept: list[str]) -> list[CurrencyRemoval]:
    """The currencies offered now that a save keeping only `kept` would stop offering."""

    removed = TopUpLimit.objects.exclude(currency__in=kept).values_list("currency", flat=True)
    return [
        CurrencyRemoval(
            currency=currency,
            auto_recharges_on=AutoRecharge.objects.filter(currency=currency, enabled=True).count(),
            wallets_with_money=Wallet.objects.filter(currency=currency).exclude(balance=0).count(),
        )
        for currency in removed
    ]


def adjustment_currencies(*, account: BillingAccount) -> list[str]:
    """Currencies an admin may adjust in: those the organisation offers and the account's
    wallets' (a currency no longer offered may still hold a balance)."""

    offered = TopUpLimit.objects.values_list("currency", flat=True)
    held = Wallet.objects.filter(billing_account=account).values_list("currency", flat=True)
    return sorted({*offered, *held})


RECENT_TOP_UPS = 10


def recent_top_ups(*, account: BillingAccount, limit: int = RECENT_TOP_UPS) -> list[TopUp]:
    """The account's latest payments, Add credit and auto-recharge, newest first."""
    return list(
        TopUp.objects.filter(billing_account=account).order_by("-created_at", "-id")[:limit]
    )


def latest_checkout_top_ups(*, account: BillingAccount) -> dict[str, TopUp]:
    """Per currency, the developer's latest Add credit top-up (the one a warning is about)."""
    latest: dict[str, TopUp] = {}
    recent = TopUp.objects.filter(billing_account=account, source=TopUp.Source.CHECKOUT)
    for top_up in recent.order_by("-created_at", "-id")[:50]:
        latest.setdefault(top_up.currency, top_up)
    return latest


def top_up_payable(top_up: TopUp) -> bool:
    """Its Stripe (or test) payment page can still be paid."""
    opened = bool(top_up.checkout_url) and top_up.stripe_payment_intent_id is None
    fresh = top_up.created_at >= timezone.now() - stripe_gateway.CHECKOUT_LIFETIME
    return top_up.state == TopUp.State.PENDING and opened and fresh
