"""Reads of usage: what rated usage a prepaid wallet could not pay (owed), and events that
name a row that is not there (the usage table keeps no database foreign keys: see
billing/models/usage.py)."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q

from billing.models import BillingAccount, LedgerEntry, RatePlan, Subscription, UsageEvent, Wallet
from billing.money import Money


def usage_owed(*, account: BillingAccount, currency: str) -> Money:
    """Rated usage not yet paid: what the wallet could not pay at its floor, less what later
    credits paid of it (billing/usage/collect.py)."""
    owed = (
        Wallet.objects.filter(billing_account=account, currency=currency)
        .values_list("usage_owed", flat=True)
        .first()
    )
    return Money(owed or 0, currency)


def wallets_owing_usage() -> list[tuple[int, str]]:
    """(account id, currency) of every wallet that owes usage (a partial index: few do)."""
    owing = Wallet.objects.filter(usage_owed__gt=0).order_by("id")
    return list(owing.values_list("billing_account_id", "currency"))


def usage_events_orphaned() -> int:
    """How many usage events name a subscription, rate plan or ledger entry that is not there."""
    missing = (
        ~Exists(Subscription.objects.filter(pk=OuterRef("subscription_id")))
        | ~Exists(RatePlan.objects.filter(pk=OuterRef("rate_plan_id")))
        | Q(ledger_entry_id__isnull=False)
        & ~Exists(LedgerEntry.objects.filter(pk=OuterRef("ledger_entry_id")))
    )
    return UsageEvent.objects.filter(missing).count()
