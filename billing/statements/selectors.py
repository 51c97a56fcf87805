"""Monthly statements: one currency, one calendar month (UTC), that reconcile to the ledger.

Seed 002: "opening balance, top-ups, line-itemized consumption, closing balance". A month holds
the wallet's entries made from its first instant up to (not including) the next month's; the
opening balance is the sum of every entry before it, so opening + the month's entries = closing =
the ledger at the month's end, exactly, whatever order concurrent entries committed in.

Usage charged through usage:batch comes as one ledger entry per batch; a statement lists it per
product and day (with calls), from the events each entry carries. When a prepaid wallet at its
floor could pay only part of a batch, the rest is a line of its own ("owed"), so the lines still
add up to the entries; the later payment of it is a usage entry of its own.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db.models import CharField, F, Min, Sum, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from billing.billing_accounts.selectors import organization_settings_get
from billing.models import BillingAccount, LedgerEntry, UsageEvent, Wallet
from billing.money import Money

Kind = LedgerEntry.Kind


@dataclass(frozen=True)
class StatementLine:
    day: date  # UTC
    kind: str  # the entry kind's label: "Top-up", "Usage", …
    description: str
    reference: str  # the ledger's transaction id (a top-up's payment reference)
    amount: Money
    balance: Money  # after this line
    calls: int | None = None  # usage lines


@dataclass(frozen=True)
class Statement:
    account: BillingAccount
    currency: str
    month: str  # YYYY-MM
    start: datetime  # first instant (UTC)
    end: datetime  # first instant of the next month (UTC)
    so_far: bool  # the month is not over: the closing balance is "so far"
    opening: Money
    lines: list[StatementLine]
    closing: Money

    @property
    def last_day(self) -> date:
        return (min(self.end, timezone.now()) - timedelta(microseconds=1)).date()


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a "YYYY-MM" month in UTC; ValueError for anything else."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    days = calendar.monthrange(start.year, start.month)[1]
    return start, start + timedelta(days=days)


def statement_months(*, account: BillingAccount) -> list[tuple[str, list[str]]]:
    """Per currency (in the order the wallets were opened), the months a statement can be
    read for, newest first: from the wallet's first entry to this month, at most the
    organisation's billing history limit."""
    now = timezone.now()
    limit = max(1, organization_settings_get().billing_history_months)
    firsts = (
        Wallet.objects.filter(billing_account=account)
        .annotate(first=Min("entries__created_at"))
        .order_by("id")
        .values_list("currency", "first")
    )
    result = []
    for currency, first in firsts:
        if first is None:
            continue
        months: list[str] = []
        year, month = now.year, now.month
        while len(months) < limit and (year, month) >= (first.year, first.month):
            months.append(f"{year:04d}-{month:02d}")
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        result.append((currency, months))
    return result


def statement_available(*, account: BillingAccount, currency: str, month: str) -> bool:
    return any(currency == c and month in months for c, months in statement_months(account=account))


def statement_get(*, account: BillingAccount, currency: str, month: str) -> Statement:
    start, end = month_bounds(month)
    entries = LedgerEntry.objects.filter(wallet__billing_account=account, wallet__currency=currency)
    before = entries.filter(created_at__lt=start).aggregate(total=Sum("amount"))["total"] or 0
    month_entries = list(
        entries.filter(created_at__gte=start, created_at__lt=end).order_by("created_at", "id")
    )
    lines = _lines(month_entries, currency, opening=before)
    closing = before + sum(entry.amount for entry in month_entries)
    return Statement(
        account=account,
        currency=currency,
        month=month,
        start=start,
        end=end,
        so_far=timezone.now() < end,
        opening=Money(before, currency),
        lines=lines,
        closing=Money(closing, currency),
    )


@dataclass
class _Usage:
    """Usage of one product on one day, gathered from the entries that carried it."""

    day: date
    product: str
    calls: int = 0
    charge: int = 0  # nanos, positive


@dataclass(frozen=True)
class _Item:
    day: date
    kind: str
    description: str
    reference: str
    amount: int


def _lines(entries: list[LedgerEntry], currency: str, *, opening: int) -> list[StatementLine]:
    carried = _usage_carried([e.pk for e in entries if e.kind == Kind.USAGE])
    items: list[_Item | _Usage] = []
    usage: dict[tuple[date, str], _Usage] = {}
    for entry in entries:
        day = entry.created_at.astimezone(UTC).date()
        products = carried.get(entry.pk)
        if not products:  # every other entry is a line of its own
            label = Kind(entry.kind).label
            items.append(_Item(day, label, entry.memo or label, entry.transaction_id, entry.amount))
            continue
        for product, (product_calls, charge) in products.items():
            if (day, product) not in usage:
                usage[(day, product)] = _Usage(day, product)
                items.append(usage[(day, product)])
            usage[(day, product)].calls += product_calls
            usage[(day, product)].charge += charge
        owed = sum(charge for _, charge in products.values()) + entry.amount
        if owed:  # the wallet was at its floor: it paid less than the events cost
            description = "Usage owed, paid from a later credit"
            items.append(_Item(day, "Usage", description, entry.transaction_id, owed))
    lines: list[StatementLine] = []
    balance = opening
    for item in items:
        calls: int | None = item.calls if isinstance(item, _Usage) else None
        line = _usage_item(item) if isinstance(item, _Usage) else item
        balance += line.amount
        lines.append(
            StatementLine(
                line.day,
                line.kind,
                line.description,
                line.reference,
                Money(line.amount, currency),
                Money(balance, currency),
                calls,
            )  # fmt: skip
        )
    return lines


def _usage_item(usage: _Usage) -> _Item:
    plural = "s" if usage.calls != 1 else ""
    description = f"{usage.product}: {usage.calls:,} call{plural}"
    return _Item(usage.day, "Usage", description, "", -usage.charge)


_PRODUCT_NAME = Coalesce(
    NullIf(F("subscription__product__display_name"), Value("")),
    F("subscription__product__name"),
    output_field=CharField(),
)


def _usage_carried(entry_ids: list[int]) -> dict[int, dict[str, tuple[int, int]]]:
    """Per usage entry, its events' calls and charges by product name (one query)."""
    if not entry_ids:
        return {}
    rows = (
        UsageEvent.objects.filter(ledger_entry_id__in=entry_ids)
        .values("ledger_entry_id", product=_PRODUCT_NAME)
        .annotate(calls=Sum("units"), charge=Sum("charge_nanos"))
        .order_by("ledger_entry_id", "product")
    )
    carried: dict[int, dict[str, tuple[int, int]]] = defaultdict(dict)
    for row in rows:
        carried[row["ledger_entry_id"]][row["product"]] = (row["calls"], row["charge"])
    return carried
