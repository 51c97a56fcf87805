"""The arithmetic of a subscription's fees, in whole nanos and UTC days."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime

from billing.models import RatePlan
from billing.money import Money


def month_of(at: datetime) -> str:
    """The fee period an instant falls in: "YYYY-MM" (UTC)."""
    at = at.astimezone(UTC)
    return f"{at.year:04d}-{at.month:02d}"


def prorated_fee(fee_nanos: int, start: datetime) -> tuple[int, int, int]:
    """The first recurring fee for a start on `start`'s day (UTC): the fee times the days left
    in the month, start day included, over the days in the month, rounded down to the nano.
    Returns (fee, days charged, days in the month)."""
    start = start.astimezone(UTC)
    days_in_month = calendar.monthrange(start.year, start.month)[1]
    days_left = days_in_month - start.day + 1
    return fee_nanos * days_left // days_in_month, days_left, days_in_month


@dataclass(frozen=True)
class Quote:
    """What buying a plan costs at a start: the setup fee and the first (prorated) recurring
    fee, in the plan's currency."""

    plan: RatePlan
    start: datetime
    setup_fee: Money
    first_fee: Money
    days_charged: int
    days_in_month: int

    @property
    def total(self) -> Money:
        return Money(self.setup_fee.nanos + self.first_fee.nanos, self.setup_fee.currency)

    @property
    def period(self) -> str:
        return month_of(self.start)


def purchase_quote(plan: RatePlan, start: datetime) -> Quote:
    first, days, days_in_month = prorated_fee(plan.recurring_fee_nanos, start)
    return Quote(
        plan=plan,
        start=start,
        setup_fee=Money(plan.setup_fee_nanos, plan.currency),
        first_fee=Money(first, plan.currency),
        days_charged=days,
        days_in_month=days_in_month,
    )


def month_start(year: int, month: int) -> datetime:
    """The first instant of a month, UTC."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeeCharge:
    """One fee to debit, under its own ledger transaction id (so it is charged at most once)."""

    transaction_id: str
    money: Money
    memo: str
    period: str  # YYYY-MM


def _plan_label(plan: RatePlan) -> str:
    return f"{plan.product.display_name}, {plan.display_name} plan"


def fees_due(
    *, subscription_id: str, plan: RatePlan, start: datetime, end: datetime | None, as_of: datetime
) -> tuple[list[FeeCharge], datetime | None]:
    """Every fee of a subscription due by `as_of`, oldest first, and when the next one falls
    due (None: never again). At the start: the setup fee and the first recurring fee, prorated;
    then the full fee on the 1st of every `fee_frequency_months`-th month, while it is open."""
    start = start.astimezone(UTC)
    if start > as_of:
        return [], start
    label = _plan_label(plan)
    charges = []
    if plan.setup_fee_nanos:
        charges.append(
            FeeCharge(
                f"purchase:{subscription_id}:setup",
                Money(plan.setup_fee_nanos, plan.currency),
                f"Setup fee: {label}",
                month_of(start),
            )
        )
    first = purchase_quote(plan, start)
    if first.first_fee.nanos:
        charges.append(
            FeeCharge(
                f"fee:{subscription_id}:{month_of(start)}",
                first.first_fee,
                f"Recurring fee, {start:%b %Y} ({first.days_charged} of "
                f"{first.days_in_month} days): {label}",
                month_of(start),
            )
        )
    if not plan.recurring_fee_nanos:
        return charges, None
    months = plan.fee_frequency_months
    due = month_start(start.year, start.month + months)
    while due <= as_of and (end is None or due < end):
        charges.append(
            FeeCharge(
                f"fee:{subscription_id}:{month_of(due)}",
                Money(plan.recurring_fee_nanos, plan.currency),
                f"Recurring fee, {_months_label(due, months)}: {label}",
                month_of(due),
            )
        )
        due = month_start(due.year, due.month + months)
    return charges, (None if end is not None and due >= end else due)


def _months_label(first: datetime, months: int) -> str:
    if months == 1:
        return f"{first:%b %Y}"
    last = month_start(first.year, first.month + months - 1)
    return f"{first:%b %Y} to {last:%b %Y}"
