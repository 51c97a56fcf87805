"""Revenue reports for admins ("View revenue reports"): one currency, a range of whole UTC days,
totals per product and per developer of setup fees, recurring fees, usage, top-ups, refunds and
the revenue share owed to developers. The Drupal module offers none on Apigee X (its issue #259).

Sources: fees are the ledger's FEE entries (`purchase:<subscription>:setup`, `fee:<subscription>:
<month>`); usage is what the events rated in the range cost (paid or still owed), plus usage
charged through balance:debit (no product); top-ups and refunds are the ledger's entries.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import F, Q, Sum

from billing.models import LedgerEntry, Subscription, UsageEvent
from billing.money import Money
from billing.statements.documents import amount_text

Kind = LedgerEntry.Kind
COLUMNS = ("setup_fees", "recurring_fees", "usage", "top_ups", "refunds", "revenue_share")
NO_PRODUCT = "(charged through the API)"


@dataclass
class Totals:
    setup_fees: int = 0
    recurring_fees: int = 0
    usage: int = 0
    top_ups: int = 0
    refunds: int = 0
    revenue_share: int = 0  # owed to the developer

    def add(self, column: str, nanos: int) -> None:
        setattr(self, column, getattr(self, column) + nanos)


@dataclass
class RevenueReport:
    currency: str
    first_day: date
    last_day: date
    products: dict[str, Totals] = field(default_factory=dict)
    developers: dict[str, Totals] = field(default_factory=dict)
    total: Totals = field(default_factory=Totals)

    @property
    def product_totals(self) -> list[tuple[str, Totals]]:
        return sorted(self.products.items())

    @property
    def developer_totals(self) -> list[tuple[str, Totals]]:
        return sorted(self.developers.items())

    def money(self, totals: Totals, column: str) -> Money:
        return Money(getattr(totals, column), self.currency)

    @property
    def empty(self) -> bool:
        return not self.developers


def revenue_report(*, currency: str, first_day: date, last_day: date) -> RevenueReport:
    """Totals of the days first_day..last_day (UTC, both included)."""
    start = datetime.combine(first_day, time(), tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), time(), tzinfo=UTC)
    report = RevenueReport(currency, first_day, last_day)
    _ledger(report, start, end)
    _usage(report, start, end)
    return report


def _add(report: RevenueReport, product: str | None, developer: str, column: str, n: int) -> None:
    if product is not None:
        report.products.setdefault(product, Totals()).add(column, n)
    report.developers.setdefault(developer, Totals()).add(column, n)
    report.total.add(column, n)


def _ledger(report: RevenueReport, start: datetime, end: datetime) -> None:
    entries = (
        LedgerEntry.objects.filter(
            wallet__currency=report.currency, created_at__gte=start, created_at__lt=end
        )
        .filter(
            Q(kind__in=[Kind.FEE, Kind.TOP_UP, Kind.REFUND])
            # Usage the portal rated is counted from its events (below); usage:batch's debits
            # and the later payment of what was owed carry these reserved prefixes.
            | Q(kind=Kind.USAGE)
            & ~Q(transaction_id__startswith="usage:")
            & ~Q(transaction_id__startswith="usage-owed:")
        )
        .values_list("kind", "transaction_id", "amount", F("wallet__billing_account__user__email"))
        .order_by("id")
    )
    rows = list(entries)
    products = _fee_products([tx for kind, tx, _, _ in rows if kind == Kind.FEE])
    for kind, transaction_id, amount, email in rows:
        if kind == Kind.TOP_UP:
            _add(report, None, email, "top_ups", amount)
        elif kind == Kind.REFUND:
            _add(report, None, email, "refunds", -amount)
        elif kind == Kind.USAGE:  # balance:debit: usage the portal did not rate
            _add(report, NO_PRODUCT, email, "usage", -amount)
        else:
            column = "setup_fees" if transaction_id.endswith(":setup") else "recurring_fees"
            _add(report, products.get(transaction_id, "(unknown product)"), email, column, -amount)


def _fee_products(transaction_ids: list[str]) -> dict[str, str]:
    """The product of each fee, from the subscription its transaction id names."""
    by_subscription: dict[uuid.UUID, list[str]] = defaultdict(list)
    for transaction_id in transaction_ids:
        try:
            by_subscription[uuid.UUID(transaction_id.split(":")[1])].append(transaction_id)
        except (IndexError, ValueError):
            continue
    names = Subscription.objects.filter(public_id__in=by_subscription).values_list(
        "public_id", "product__name"
    )
    return {tx: name for public_id, name in names for tx in by_subscription[public_id]}


def _usage(report: RevenueReport, start: datetime, end: datetime) -> None:
    rated = (
        UsageEvent.objects.filter(
            rate_plan__currency=report.currency, created_at__gte=start, created_at__lt=end
        )
        .values(
            product=F("subscription__product__name"),
            email=F("subscription__billing_account__user__email"),
        )
        .annotate(charge=Sum("charge_nanos"), share=Sum("revenue_share_nanos"))
        .order_by("product", "email")
    )
    for row in rated:
        _add(report, row["product"], row["email"], "usage", row["charge"])
        _add(report, row["product"], row["email"], "revenue_share", row["share"])


def revenue_rows(report: RevenueReport) -> list[list[str]]:
    """The CSV: a header, a row per product, a row per developer, and the total."""
    header = ["group", "name", *COLUMNS]
    rows = [header]
    for group, named in (
        ("product", report.product_totals),
        ("developer", report.developer_totals),
    ):
        for name, totals in named:
            rows.append([group, name, *(amount_text(report.money(totals, c)) for c in COLUMNS)])
    rows.append(["total", "", *(amount_text(report.money(report.total, c)) for c in COLUMNS)])
    return rows
