"""Usage a prepaid wallet could not pay at its floor is owed, and the next credit pays it:
once, partly when the credit is short, never twice under concurrent collectors."""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.db import connection

from billing.catalog.rates import Band
from billing.exceptions import BillingError
from billing.ledger.entries import Actor
from billing.ledger.services import transaction_id_refuse_reserved, wallet_credit
from billing.limits.selectors import limits_check
from billing.models import LedgerEntry, Wallet
from billing.subscriptions.services import subscription_purchase
from billing.tasks import collect_owed_usage
from billing.usage.collect import usage_owed_collect
from billing.usage.ingest import usage_batch_record
from billing.usage.selectors import usage_owed
from tests.billing.usage.helpers import app_with_key, report
from tests.conftest import NANOS_PER_UNIT, usd
from tests.factories import ApiProductFactory, published_plan

CENT = NANOS_PER_UNIT // 100
SYSTEM = Actor.system()


def owing(account, *, owed_cents_per_call=30, calls=5, credit="1"):
    """A prepaid wallet of `credit` that was charged `calls` × 30 cents: 0.50 owed."""
    product = ApiProductFactory(name="weather-api", display_name="Weather API")
    published_plan(
        product,
        consumption_pricing_type="FIXED_PER_UNIT",
        bands=[Band(0, 0, owed_cents_per_call * CENT)],
    )
    wallet_credit(account=account, money=usd(credit), transaction_id="t0", actor=SYSTEM)
    subscription_purchase(account=account, product=product, actor=SYSTEM)
    _, _, key = app_with_key(account, product)
    usage_batch_record(events=[report("e1", key, "weather-api", units=calls)], actor=SYSTEM)
    return key


def wallet(account) -> Wallet:
    return Wallet.objects.get(billing_account=account)


@pytest.mark.django_db
def test_the_next_credit_pays_what_is_owed(prepaid_account, django_capture_on_commit_callbacks):
    key = owing(prepaid_account)
    assert usage_owed(account=prepaid_account, currency="USD") == usd("0.50")
    assert limits_check(consumer_key=key, product_name="weather-api").reason == (
        "INSUFFICIENT_BALANCE"
    )

    with django_capture_on_commit_callbacks(execute=True):
        wallet_credit(account=prepaid_account, money=usd("2"), transaction_id="t1", actor=SYSTEM)

    # The reaction paid the 0.50 from the 2.00: 1.50 left, nothing owed, calls allowed again.
    assert wallet(prepaid_account).balance == usd("1.50").nanos
    assert usage_owed(account=prepaid_account, currency="USD") == usd("0")
    paid = LedgerEntry.objects.filter(kind="USAGE").order_by("-id").first()
    assert paid.amount == -usd("0.50").nanos and "owed" in paid.memo
    assert limits_check(consumer_key=key, product_name="weather-api").allowed
    # Collecting again pays nothing more.
    assert usage_owed_collect(account_id=prepaid_account.pk, currency="USD") == usd("0")
    call_command("check_ledger")


@pytest.mark.django_db
def test_a_short_credit_pays_part_and_the_rest_stays_owed(
    prepaid_account, django_capture_on_commit_callbacks
):
    key = owing(prepaid_account)
    with django_capture_on_commit_callbacks(execute=True):
        wallet_credit(account=prepaid_account, money=usd("0.20"), transaction_id="t1", actor=SYSTEM)
    assert wallet(prepaid_account).balance == 0
    assert usage_owed(account=prepaid_account, currency="USD") == usd("0.30")
    answer = limits_check(consumer_key=key, product_name="weather-api")
    assert answer.reason == "INSUFFICIENT_BALANCE"


@pytest.mark.django_db
def test_a_balance_above_the_floor_still_refuses_calls_while_usage_is_owed(prepaid_account):
    """Money that came in without the reaction (a broker down) does not reopen calls until
    what is owed is paid: the limits check counts it as spent."""
    key = owing(prepaid_account)
    Wallet.objects.filter(billing_account=prepaid_account).update(balance=usd("0.40").nanos)
    assert limits_check(consumer_key=key, product_name="weather-api").reason == (
        "INSUFFICIENT_BALANCE"
    )
    Wallet.objects.filter(billing_account=prepaid_account).update(balance=usd("0.60").nanos)
    assert limits_check(consumer_key=key, product_name="weather-api").allowed


@pytest.mark.django_db
def test_the_hourly_collection_finds_a_wallet_whose_reaction_was_lost(prepaid_account):
    owing(prepaid_account)
    # Money arrives without the ledger (as if its reaction had been lost).
    Wallet.objects.filter(billing_account=prepaid_account).update(balance=usd("3").nanos)
    LedgerEntry.objects.create(
        wallet=wallet(prepaid_account), kind="ADJUSTMENT", amount=usd("3").nanos,
        balance_after=usd("3").nanos, transaction_id="lost", actor_type="SYSTEM",
    )  # fmt: skip
    assert collect_owed_usage() == 1
    assert wallet(prepaid_account).balance == usd("2.50").nanos
    assert collect_owed_usage() == 0
    call_command("check_ledger")


@pytest.mark.django_db
def test_portal_prefixes_are_reserved_for_callers():
    for taken in ("fee:1:2026-12", "purchase:1:setup", "usage:x:1:USD", "usage-owed:x"):
        with pytest.raises(BillingError):
            transaction_id_refuse_reserved(taken)
    transaction_id_refuse_reserved("my-own-id")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_collectors_pay_once(postgres, prepaid_account):
    owing(prepaid_account)
    Wallet.objects.filter(billing_account=prepaid_account).update(balance=usd("5").nanos)
    LedgerEntry.objects.create(
        wallet=wallet(prepaid_account), kind="ADJUSTMENT", amount=usd("5").nanos,
        balance_after=usd("5").nanos, transaction_id="in", actor_type="SYSTEM",
    )  # fmt: skip
    barrier = threading.Barrier(8)
    paid = []

    def collect() -> None:
        try:
            barrier.wait()
            paid.append(usage_owed_collect(account_id=prepaid_account.pk, currency="USD"))
        finally:
            connection.close()

    threads = [threading.Thread(target=collect) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p.nanos for p in paid) == [0] * 7 + [usd("0.50").nanos]
    assert wallet(prepaid_account).balance == usd("4.50").nanos
    assert usage_owed(account=prepaid_account, currency="USD") == usd("0")
    call_command("check_ledger")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_usage_owed_while_a_collector_runs_is_not_lost(postgres, prepaid_account):
    """A batch adding to what is owed while a credit's collector pays: every nano of usage is
    either paid or still owed (no lost update on the wallet's owed amount)."""
    key = owing(prepaid_account)
    stop = threading.Event()

    def report_more() -> None:
        try:
            for n in range(20):
                usage_batch_record(events=[report(f"more-{n}", key, "weather-api")], actor=SYSTEM)
        finally:
            stop.set()
            connection.close()

    def credit_and_collect() -> None:
        try:
            n = 0
            while not stop.is_set():
                n += 1
                wallet_credit(
                    account=prepaid_account, money=usd("0.10"), transaction_id=f"c{n}",
                    actor=SYSTEM,
                )  # fmt: skip
                usage_owed_collect(account_id=prepaid_account.pk, currency="USD")
        finally:
            connection.close()

    threads = [threading.Thread(target=report_more), threading.Thread(target=credit_and_collect)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage_owed_collect(account_id=prepaid_account.pk, currency="USD")
    charged = 25 * usd("0.30").nanos  # 5 + 20 calls at 0.30
    paid = -sum(LedgerEntry.objects.filter(kind="USAGE").values_list("amount", flat=True))
    assert paid + usage_owed(account=prepaid_account, currency="USD").nanos == charged
    call_command("check_ledger")


@pytest.mark.django_db
def test_the_balance_page_says_what_is_owed(client, prepaid_account):
    owing(prepaid_account)
    client.force_login(prepaid_account.user)
    page = client.get("/account/balance/").content.decode()
    assert "$0.50 of usage owed: paid from the next credit" in page
    wallet_credit(account=prepaid_account, money=usd("2"), transaction_id="t1", actor=SYSTEM)
    usage_owed_collect(account_id=prepaid_account.pk, currency="USD")
    assert "usage owed" not in client.get("/account/balance/").content.decode()
