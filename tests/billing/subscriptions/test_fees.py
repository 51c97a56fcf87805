"""The fee arithmetic: the first recurring fee prorated by whole UTC days, rounded down to the
nano; the fees due by an instant, each under its own transaction id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from billing.subscriptions.fees import fees_due, prorated_fee, purchase_quote
from tests.factories import published_plan

TEN_DOLLARS = 10_000_000_000


def at(y: int, m: int, d: int, hour: int = 12) -> datetime:
    return datetime(y, m, d, hour, tzinfo=UTC)


# (start day, expected nanos of a $10.00 monthly fee, days charged, days in the month):
# worked out by hand, 10 × days left / days in month, rounded down to the nano.
TABLE = [
    (at(2026, 2, 1), 10_000_000_000, 28, 28),  # 28-day month, the 1st: the whole fee
    (at(2026, 2, 15), 5_000_000_000, 14, 28),
    (at(2026, 2, 28), 357_142_857, 1, 28),  # 0.357142857142… rounded down
    (at(2028, 2, 15), 5_172_413_793, 15, 29),  # leap February: 150/29 = 5.1724137931…
    (at(2026, 4, 1), 10_000_000_000, 30, 30),
    (at(2026, 4, 15), 5_333_333_333, 16, 30),
    (at(2026, 4, 30), 333_333_333, 1, 30),
    (at(2027, 1, 1), 10_000_000_000, 31, 31),
    (at(2027, 1, 15), 5_483_870_967, 17, 31),  # 170/31 = 5.4838709677…
    (at(2027, 1, 31), 322_580_645, 1, 31),
]


@pytest.mark.parametrize(("start", "expected", "days", "days_in_month"), TABLE)
def test_first_fee_is_prorated_by_whole_days(start, expected, days, days_in_month):
    assert prorated_fee(TEN_DOLLARS, start) == (expected, days, days_in_month)


def test_the_day_is_the_utc_day():
    # 23:30 on 31 Jan in New York is 1 Feb in UTC: the whole of February is charged.
    new_york = timezone(timedelta(hours=-5))
    start = datetime(2027, 1, 31, 23, 30, tzinfo=new_york)
    assert prorated_fee(TEN_DOLLARS, start) == (TEN_DOLLARS, 28, 28)


def test_a_zero_fee_prorates_to_zero():
    assert prorated_fee(0, at(2027, 1, 15)) == (0, 17, 31)


def test_jpy_keeps_the_nanos_rounded_down():
    # ¥1,000 from 15 Jan: 17,000/31 = ¥548.387096774…
    assert prorated_fee(1000 * 10**9, at(2027, 1, 15))[0] == 548_387_096_774


@pytest.mark.django_db
def test_quote_is_setup_plus_first_fee():
    plan = published_plan(setup="10", recurring="31", start=at(2026, 1, 1))
    quote = purchase_quote(plan, at(2027, 1, 15))
    assert (quote.setup_fee.nanos, quote.first_fee.nanos) == (10 * 10**9, 17 * 10**9)
    assert quote.total.nanos == 27 * 10**9 and quote.total.currency == "USD"


@pytest.mark.django_db
def test_fees_due_each_month_under_their_own_ids():
    plan = published_plan(setup="1", recurring="31", start=at(2026, 1, 1))
    due, next_at = fees_due(
        subscription_id="s", plan=plan, start=at(2026, 10, 15), end=None, as_of=at(2026, 12, 1, 0)
    )
    assert [(f.transaction_id, f.money.nanos) for f in due] == [
        ("purchase:s:setup", 10**9),
        ("fee:s:2026-10", 31 * 10**9 * 17 // 31),
        ("fee:s:2026-11", 31 * 10**9),
        ("fee:s:2026-12", 31 * 10**9),
    ]
    assert next_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert due[2].memo == f"Recurring fee, Nov 2026: {plan.product.display_name}, Standard plan"


@pytest.mark.django_db
def test_fees_every_three_months_and_none_after_the_end():
    plan = published_plan(recurring="3", start=at(2026, 1, 1), fee_frequency_months=3)
    due, next_at = fees_due(
        subscription_id="s",
        plan=plan,
        start=at(2026, 1, 10),
        end=at(2026, 7, 15),
        as_of=at(2026, 12, 1),
    )
    assert [f.transaction_id for f in due] == ["fee:s:2026-01", "fee:s:2026-04", "fee:s:2026-07"]
    assert "Apr 2026 to Jun 2026" in due[1].memo
    assert next_at is None  # October is after the end


@pytest.mark.django_db
def test_nothing_is_due_before_the_start():
    plan = published_plan(setup="1", start=at(2026, 1, 1))
    due, next_at = fees_due(
        subscription_id="s", plan=plan, start=at(2026, 6, 1), end=None, as_of=at(2026, 5, 1)
    )
    assert due == [] and next_at == at(2026, 6, 1)
