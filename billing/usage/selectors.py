"""Reads of usage: what rated usage a prepaid wallet could not pay (owed)."""

from __future__ import annotations

from django.db.models import Sum

from billing.models import BillingAccount, LedgerEntry, UsageEvent
from billing.money import Money


def usage_owed(*, account: BillingAccount, currency: str) -> Money:
    """Rated usage not yet paid: the charges of the account's events in `currency` less what
    the usage debits that carried them took (a wallet at its floor pays part, or nothing)."""
    events = UsageEvent.objects.filter(
        subscription__billing_account=account, rate_plan__currency=currency
    )
    charged = events.aggregate(total=Sum("charge_nanos"))["total"] or 0
    paid = (
        LedgerEntry.objects.filter(
            pk__in=events.filter(ledger_entry__isnull=False).values("ledger_entry_id")
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )
    return Money(charged + paid, currency)  # debits are negative amounts
