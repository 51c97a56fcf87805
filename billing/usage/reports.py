"""What the developer sees of their usage: calls and charges per product and day of a month,
and the events behind one usage ledger entry. A few aggregate queries, however many events."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.db.models import Count, Max, Min, QuerySet, Sum
from django.db.models.functions import TruncDate

from billing.models import BillingAccount, LedgerEntry, UsageEvent
from billing.money import Money


@dataclass(frozen=True)
class UsageRow:
    day: date
    product: str
    currency: str
    events: int
    calls: int
    charge: Money


@dataclass
class MonthUsage:
    month: str  # YYYY-MM
    rows: list[UsageRow]
    # Per currency: total calls and charge of the month.
    totals: dict[str, tuple[int, Money]] = field(default_factory=dict)
    # Calls per day (all products), for the chart: (day of month, calls).
    calls_by_day: list[tuple[int, int]] = field(default_factory=list)


def usage_months(*, account: BillingAccount) -> list[str]:
    """The months with usage, newest first."""
    months = (
        UsageEvent.objects.filter(subscription__billing_account=account)
        .values_list("month", flat=True)
        .distinct()
    )
    return sorted(months, reverse=True)


def usage_of_month(*, account: BillingAccount, month: str, days_in_month: int) -> MonthUsage:
    grouped = (
        UsageEvent.objects.filter(subscription__billing_account=account, month=month)
        .annotate(day=TruncDate("time", tzinfo=UTC))
        .values("day", "subscription__product__display_name", "rate_plan__currency")
        .annotate(events=Count("id"), calls=Sum("units"), charge=Sum("charge_nanos"))
        .order_by("day", "subscription__product__display_name")
    )
    rows = [
        UsageRow(
            day=g["day"],
            product=g["subscription__product__display_name"],
            currency=g["rate_plan__currency"],
            events=g["events"],
            calls=g["calls"],
            charge=Money(g["charge"], g["rate_plan__currency"]),
        )
        for g in grouped
    ]
    usage = MonthUsage(month, rows)
    calls: dict[str, int] = defaultdict(int)
    charges: dict[str, int] = defaultdict(int)
    per_day: dict[int, int] = defaultdict(int)
    for row in rows:
        calls[row.currency] += row.calls
        charges[row.currency] += row.charge.nanos
        per_day[row.day.day] += row.calls
    usage.totals = {c: (calls[c], Money(charges[c], c)) for c in sorted(calls)}
    usage.calls_by_day = [(d, per_day[d]) for d in range(1, days_in_month + 1)]
    return usage


def usage_entry_get(*, account: BillingAccount, entry_id: int) -> LedgerEntry | None:
    return (
        LedgerEntry.objects.select_related("wallet")
        .filter(pk=entry_id, wallet__billing_account=account, kind=LedgerEntry.Kind.USAGE)
        .first()
    )


def usage_entry_events(*, entry: LedgerEntry) -> QuerySet[UsageEvent]:
    """The events one usage debit carried, oldest first (page them)."""
    return (
        UsageEvent.objects.filter(ledger_entry=entry)
        .select_related("subscription__product", "rate_plan")
        .order_by("time", "id")
    )


def usage_entry_span(*, entry: LedgerEntry) -> tuple[datetime | None, datetime | None]:
    span = UsageEvent.objects.filter(ledger_entry=entry).aggregate(
        first=Min("time"), last=Max("time")
    )
    return span["first"], span["last"]


def usage_month_totals(*, account: BillingAccount, month: str) -> list[tuple[int, Money]]:
    """Calls and charge of a month, one pair per currency (the home page's summary)."""
    totals = (
        UsageEvent.objects.filter(subscription__billing_account=account, month=month)
        .values("rate_plan__currency")
        .annotate(calls=Sum("units"), charge=Sum("charge_nanos"))
        .order_by("rate_plan__currency")
    )
    return [(t["calls"], Money(t["charge"], t["rate_plan__currency"])) for t in totals]
