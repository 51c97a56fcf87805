"""usage:batch's service: one result per event in order, duplicates forever, rejects alone,
calls numbered per subscription and month, quota windows counted, one debit per wallet and
batch, and a prepaid wallet that stops at its floor while the usage is still owed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.catalog.rates import Band, ShareRate
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.limits.selectors import limits_check
from billing.models import AppKey, LedgerEntry, UsageCounter, UsageEvent, Wallet
from billing.money import Money
from billing.subscriptions.services import subscription_expire, subscription_purchase
from billing.usage.ingest import usage_batch_record
from billing.usage.selectors import usage_owed
from billing.usage.windows import month_period, quota_period, quota_window
from tests.billing.usage.helpers import app_with_key, report
from tests.conftest import NANOS_PER_UNIT, usd
from tests.factories import ApiProductFactory, DeveloperFactory, published_plan

pytestmark = pytest.mark.django_db

CENT = NANOS_PER_UNIT // 100
SYSTEM = Actor.system()


@pytest.fixture
def product():
    return ApiProductFactory(name="weather-api", display_name="Weather API")


def banded(product, currency="USD"):
    return published_plan(
        product,
        currency=currency,
        consumption_pricing_type="BANDED",
        bands=[Band(0, 3, 10 * CENT), Band(3, 0, 5 * CENT)],
    )


def fixed(product, fee_nanos=3 * CENT, currency="USD", **fields):
    return published_plan(
        product,
        currency=currency,
        consumption_pricing_type="FIXED_PER_UNIT",
        bands=[Band(0, 0, fee_nanos)],
        **fields,
    )


def buy(account, product):
    return subscription_purchase(account=account, product=product, actor=SYSTEM).subscription


def statuses(results):
    return [(r.event_id, r.status, r.charge, r.reason) for r in results]


def test_banded_events_are_numbered_across_batches(developer, product):
    banded(product)
    account = developer.billing_account
    subscription = buy(account, product)
    _, _, key = app_with_key(account, product)

    first = usage_batch_record(
        events=[report("e1", key, "weather-api"), report("e2", key, "weather-api")],
        actor=SYSTEM,
    )
    # Calls 3 and 4: one at the first band's 10 cents, one at the second's 5.
    second = usage_batch_record(events=[report("e3", key, "weather-api", units=2)], actor=SYSTEM)

    assert statuses(first) == [
        ("e1", "RATED", usd("0.10"), ""),
        ("e2", "RATED", usd("0.10"), ""),
    ]
    assert statuses(second) == [("e3", "RATED", usd("0.15"), "")]
    e3 = UsageEvent.objects.get(event_id="e3")
    assert (e3.first_call, e3.unit_fee_nanos, e3.charge_nanos) == (3, 10 * CENT, 15 * CENT)
    assert e3.rate_plan == subscription.rate_plan and e3.month == month_period(timezone.now())
    counter = UsageCounter.objects.get(subscription=subscription, period=e3.month)
    assert counter.calls == 4
    # Postpaid: each batch is one usage debit, carrying its events.
    entries = LedgerEntry.objects.filter(kind="USAGE").order_by("id")
    assert [e.amount for e in entries] == [-20 * CENT, -15 * CENT]
    assert entries[0].memo == "Usage: 2 calls, Weather API"
    carried = UsageEvent.objects.filter(ledger_entry=entries[0])
    assert set(carried.values_list("event_id", flat=True)) == {"e1", "e2"}
    assert Wallet.objects.get().balance == -35 * CENT
    call_command("check_ledger")


def test_check_ledger_reports_an_event_naming_a_missing_row(developer, product, capsys):
    """The usage table keeps no database foreign keys (billing/models/usage.py), so
    check_ledger is what notices an event whose ledger entry, plan or subscription is gone."""
    fixed(product)
    buy(developer.billing_account, product)
    _, _, key = app_with_key(developer.billing_account, product)
    usage_batch_record(events=[report("e1", key, "weather-api")], actor=SYSTEM)
    call_command("check_ledger")
    assert "OK" in capsys.readouterr().out
    UsageEvent.objects.update(ledger_entry_id=10**12)
    with pytest.raises(SystemExit) as exit_info:
        call_command("check_ledger")
    assert exit_info.value.code == 1
    assert "1 usage events name a subscription" in capsys.readouterr().err
    UsageEvent.objects.update(
        ledger_entry_id=LedgerEntry.objects.get(kind="USAGE").pk, rate_plan_id=10**12
    )
    with pytest.raises(SystemExit):
        call_command("check_ledger")


def test_multiplier_units_and_revenue_share(developer, product):
    published_plan(
        product,
        consumption_pricing_type="FIXED_PER_UNIT",
        bands=[Band(0, 0, 3 * CENT)],
        revenue_share_type="FIXED",
        share_rates=[ShareRate(0, 0, Decimal("12.5"))],
    )
    account = developer.billing_account
    buy(account, product)
    _, _, key = app_with_key(account, product)

    results = usage_batch_record(
        events=[
            report("a", key, "weather-api", units=3, multiplier="1.5"),
            report("b", key, "weather-api", multiplier="0.001"),
            report("c", key, "weather-api", units="4"),
        ],
        actor=SYSTEM,
    )

    assert [r.charge for r in results] == [
        Money(13_500_000 * 10, "USD"),
        Money(30_000, "USD"),
        usd("0.12"),
    ]
    a = UsageEvent.objects.get(event_id="a")
    assert (a.multiplier, a.units, a.revenue_share_nanos) == ("1.5", 3, 16_875_000)


def test_jpy_plan_debits_the_yen_wallet(developer, product):
    fixed(product, fee_nanos=2 * NANOS_PER_UNIT, currency="JPY")
    account = developer.billing_account
    buy(account, product)
    _, _, key = app_with_key(account, product)

    results = usage_batch_record(
        events=[report("y", key, "weather-api", units=5, multiplier="0.5")], actor=SYSTEM
    )

    assert results[0].charge == Money(5 * NANOS_PER_UNIT, "JPY")
    assert Wallet.objects.get(currency="JPY").balance == -5 * NANOS_PER_UNIT


def test_duplicates_and_rejects_are_answered_per_event_in_order(developer, product):
    fixed(product)
    account = developer.billing_account
    buy(account, product)
    other_product = ApiProductFactory(name="maps-api")
    fixed(other_product)
    _, key_row, key = app_with_key(account, product)
    _, revoked_row, revoked = app_with_key(account, product, name="Old app")
    AppKey.objects.filter(pk=revoked_row.pk).update(status=AppKey.Status.REVOKED)
    stranger = DeveloperFactory().billing_account
    _, _, strangers_key = app_with_key(stranger, product)
    usage_batch_record(events=[report("seen", key, "weather-api")], actor=SYSTEM)
    now = timezone.now()

    results = usage_batch_record(
        events=[
            report("ok1", key, "weather-api"),
            report("seen", key, "weather-api"),  # stored by the batch before: forever
            report("ok1", key, "weather-api"),  # earlier in this batch
            report("bad-key", "no-such-key", "weather-api"),
            report("revoked", revoked, "weather-api"),
            report("no-product", key, "nothing"),
            report("not-in-app", key, "maps-api"),
            report("no-subscription", strangers_key, "weather-api"),
            report("old", key, "weather-api", time=now - timedelta(days=36)),
            report("future", key, "weather-api", time=now + timedelta(minutes=1)),
            report("bad-time", key, "weather-api", time="yesterday"),
            report("naive-time", key, "weather-api", time="2026-01-01T00:00:00"),
            report("units0", key, "weather-api", units=0),
            report("units-frac", key, "weather-api", units=1.5),
            report("mult", key, "weather-api", multiplier="-1"),
            report("mult-float", key, "weather-api", multiplier=1.5),
            report(None, key, "weather-api"),
            report("epoch", key, "weather-api", time=str(int(now.timestamp() * 1000))),
            report("ok2", key, "weather-api", time=now.isoformat().replace("+00:00", "Z")),
        ],
        actor=SYSTEM,
    )

    assert [(r.event_id, r.status, r.reason) for r in results] == [
        ("ok1", "RATED", ""),
        ("seen", "DUPLICATE", ""),
        ("ok1", "DUPLICATE", ""),
        ("bad-key", "REJECTED", "INVALID_KEY"),
        ("revoked", "REJECTED", "KEY_REVOKED"),
        ("no-product", "REJECTED", "UNKNOWN_PRODUCT"),
        ("not-in-app", "REJECTED", "PRODUCT_NOT_IN_APP"),
        ("no-subscription", "REJECTED", "NO_SUBSCRIPTION"),
        ("old", "REJECTED", "TIME_TOO_OLD"),
        ("future", "REJECTED", "TIME_IN_FUTURE"),
        ("bad-time", "REJECTED", "INVALID_TIME"),
        ("naive-time", "REJECTED", "INVALID_TIME"),
        ("units0", "REJECTED", "INVALID_UNITS"),
        ("units-frac", "REJECTED", "INVALID_UNITS"),
        ("mult", "REJECTED", "INVALID_MULTIPLIER"),
        ("mult-float", "REJECTED", "INVALID_MULTIPLIER"),
        ("", "REJECTED", "INVALID_ID"),
        ("epoch", "RATED", ""),
        ("ok2", "RATED", ""),
    ]
    assert UsageEvent.objects.count() == 4  # seen, ok1, epoch, ok2
    # Only the new events were counted: calls 1 (seen), then 2, 3, 4.
    assert sorted(UsageEvent.objects.values_list("first_call", flat=True)) == [1, 2, 3, 4]
    assert LedgerEntry.objects.filter(kind="USAGE").count() == 2
    assert key_row.app.billing_account == account
    call_command("check_ledger")


def test_the_subscription_in_force_at_the_events_time(developer, product):
    fixed(product, start=timezone.now() - timedelta(days=3))
    account = developer.billing_account
    _, _, key = app_with_key(account, product)
    ended = buy(account, product)
    subscription_expire(subscription=ended, actor=SYSTEM)
    ended.refresh_from_db()

    results = usage_batch_record(
        events=[
            report("during", key, "weather-api", time=ended.end_time - timedelta(microseconds=1)),
            report("before", key, "weather-api", time=ended.start_time - timedelta(seconds=1)),
            report("after", key, "weather-api"),
        ],
        actor=SYSTEM,
    )

    assert [(r.status, r.reason) for r in results] == [
        ("RATED", ""),
        ("REJECTED", "NO_SUBSCRIPTION"),
        ("REJECTED", "NO_SUBSCRIPTION"),
    ]


def test_a_quota_window_is_counted(developer):
    product = ApiProductFactory(name="quota-api", quota=5, quota_interval=1, quota_time_unit="day")
    fixed(product)
    account = developer.billing_account
    subscription = buy(account, product)
    _, _, key = app_with_key(account, product)

    usage_batch_record(
        events=[report("q1", key, "quota-api", units=2), report("q2", key, "quota-api", units=3)],
        actor=SYSTEM,
    )

    period = quota_period(quota_window(product, timezone.now())[0])
    assert UsageCounter.objects.get(subscription=subscription, period=period).calls == 5
    answer = limits_check(consumer_key=key, product_name="quota-api")
    assert answer.reason == "QUOTA_EXCEEDED" and answer.quota.used == 5


def test_a_prepaid_wallet_stops_at_its_floor_and_the_rest_is_owed(prepaid_account, product):
    fixed(product, fee_nanos=30 * CENT)
    wallet_credit(account=prepaid_account, money=usd("1"), transaction_id="t", actor=SYSTEM)
    buy(prepaid_account, product)
    _, _, key = app_with_key(prepaid_account, product)
    assert limits_check(consumer_key=key, product_name="weather-api").allowed

    results = usage_batch_record(events=[report("p1", key, "weather-api", units=5)], actor=SYSTEM)

    # Rated at the full price; the wallet paid what it held, down to 0, and 0.50 is owed.
    assert results[0].status == "RATED" and results[0].charge == usd("1.50")
    assert Wallet.objects.get().balance == 0
    entry = LedgerEntry.objects.get(kind="USAGE")
    assert entry.amount == -NANOS_PER_UNIT
    assert "0.50" in entry.memo and "owed" in entry.memo
    assert UsageEvent.objects.get(event_id="p1").ledger_entry == entry
    assert usage_owed(account=prepaid_account, currency="USD") == usd("0.50")
    assert limits_check(consumer_key=key, product_name="weather-api").reason == (
        "INSUFFICIENT_BALANCE"
    )

    # Usage that arrives at the floor is still recorded, rated and owed; nothing is debited.
    later = usage_batch_record(events=[report("p2", key, "weather-api")], actor=SYSTEM)

    assert later[0].status == "RATED" and later[0].charge == usd("0.30")
    assert UsageEvent.objects.get(event_id="p2").ledger_entry is None
    assert LedgerEntry.objects.filter(kind="USAGE").count() == 1
    assert Wallet.objects.get().balance == 0
    assert usage_owed(account=prepaid_account, currency="USD") == usd("0.80")
    call_command("check_ledger")


def test_zero_charge_events_are_rated_without_a_ledger_entry(developer, product):
    published_plan(product)  # no consumption pricing
    account = developer.billing_account
    buy(account, product)
    _, _, key = app_with_key(account, product)

    results = usage_batch_record(events=[report("free", key, "weather-api")], actor=SYSTEM)

    assert statuses(results) == [("free", "RATED", usd("0"), "")]
    assert UsageEvent.objects.get().ledger_entry is None
    assert not LedgerEntry.objects.filter(kind="USAGE").exists()


def test_rating_follows_the_plan_in_force_at_the_events_time(developer, product):
    now = timezone.now()
    fixed(product, fee_nanos=CENT, start=now - timedelta(days=2), end=now - timedelta(hours=1))
    fixed(product, fee_nanos=2 * CENT, start=now - timedelta(hours=1))
    account = developer.billing_account
    _, _, key = app_with_key(account, product)
    subscription = buy(account, product)
    # Bought an hour and a half ago, on the first plan (made here as the purchase would).
    type(subscription).objects.filter(pk=subscription.pk).update(
        start_time=now - timedelta(hours=1, minutes=30)
    )

    results = usage_batch_record(
        events=[
            report("old-plan", key, "weather-api", time=now - timedelta(hours=1, minutes=10)),
            report("new-plan", key, "weather-api", time=now - timedelta(minutes=10)),
        ],
        actor=SYSTEM,
    )

    assert [r.charge for r in results] == [usd("0.01"), usd("0.02")]
