"""The API when a part it depends on fails: the Celery broker hangs, the database gives up on a
lock. The answer must say what happened and nothing may be half applied."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction

from accounts.models import User
from billing.api import developers as billing_api
from billing.auto_recharge.selectors import auto_recharge_due
from billing.billing_type.services import billing_type_set
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import BillingAccount, BillingType, BillingTypeChange, LedgerEntry, Wallet
from billing.money import Money
from tests.api.conftest import Api, developer_path, error_of
from tests.conftest import NANOS_PER_UNIT, forget_broker_connections, usd
from tests.factories import auto_recharge_on
from tests.fakes.silent_server import deadline, silent_server


def debit_body(units: str, tx: str) -> dict[str, Any]:
    return {"transactionAmount": {"currencyCode": "USD", "units": units}, "transactionId": tx}


@contextlib.contextmanager
def hung_broker(settings: Any) -> Iterator[None]:
    """The broker accepts connections and never answers: publishing waits for an answer."""
    with silent_server() as port:
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
        forget_broker_connections()
        try:
            yield
        finally:
            forget_broker_connections()


def _with_auto_recharge(account: BillingAccount) -> None:
    wallet_credit(account=account, money=usd("100"), transaction_id="opening", actor=Actor.system())
    auto_recharge_on(account)  # a test card; below USD 20, add USD 50


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_debit_answers_while_the_broker_hangs_and_the_sweep_finds_the_wallet(
    api: Api, developer: User, portal_admin: User, settings, prepaid_account: BillingAccount
):
    _with_auto_recharge(prepaid_account)
    token = api.token_for(portal_admin)
    path = developer_path(developer.email, "balance:debit")

    with hung_broker(settings):
        started = time.monotonic()
        with deadline(30):  # a gateway gives up long before this
            response = api.call("POST", path, debit_body("90", "usage-90"), token=token)

    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["wallets"][0]["balance"]["units"] == "10"
    assert time.monotonic() - started < 15
    assert Wallet.objects.get(currency="USD").balance == 10 * NANOS_PER_UNIT
    assert LedgerEntry.objects.filter(transaction_id="usage-90").count() == 1
    # The recharge the debit could not hand on is found by the sweep once the broker is back.
    assert auto_recharge_due() == [(developer.billing_account.pk, "USD")]


@contextlib.contextmanager
def wallet_locked_elsewhere() -> Iterator[None]:
    """Another session holds the USD wallet's row lock (a long report, a stuck transaction)."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                Wallet.objects.select_for_update().get(currency="USD")
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_lock_timeout_answers_503_json_and_the_retry_applies_once(
    api: Api, developer: User, portal_admin: User, postgres: None
):
    billing_type_set(
        account=developer.billing_account,
        billing_type=BillingType.PREPAID,
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    wallet_credit(
        account=developer.billing_account,
        money=usd("100"),
        transaction_id="opening",
        actor=Actor.system(),
    )
    token = api.token_for(portal_admin)
    path = developer_path(developer.email, "balance:debit")
    with connection.cursor() as cursor:  # the request runs on this session
        cursor.execute("SET lock_timeout = '200ms'")

    with wallet_locked_elsewhere():
        busy = api.call("POST", path, debit_body("30", "usage-30"), token=token)

    error = error_of(busy, HTTPStatus.SERVICE_UNAVAILABLE)
    assert error["status"] == "UNAVAILABLE"
    assert "transactionId" in error["message"]
    assert busy["Retry-After"] == "1"
    assert Wallet.objects.get(currency="USD").balance == 100 * NANOS_PER_UNIT
    assert not LedgerEntry.objects.filter(transaction_id="usage-30").exists()

    retry = api.call("POST", path, debit_body("30", "usage-30"), token=token)
    assert retry.status_code == HTTPStatus.OK
    assert Wallet.objects.get(currency="USD").balance == 70 * NANOS_PER_UNIT
    assert LedgerEntry.objects.filter(transaction_id="usage-30").count() == 1


@pytest.mark.django_db
def test_a_change_committed_before_the_database_failed_is_not_said_to_be_undone(
    api: Api, developer: User, portal_admin: User, monkeypatch: pytest.MonkeyPatch
):
    """The debit committed, then reading its answer failed (the database went away): the 503
    said "The request was not completed" for money that had moved. It now says it cannot tell,
    and the retry with the same transactionId tells."""
    wallet_credit(
        account=developer.billing_account,
        money=usd("100"),
        transaction_id="t0",
        actor=Actor.system(),
    )
    # A second wallet: with one, the ledger's statement itself answers (no read after it).
    wallet_credit(
        account=developer.billing_account,
        money=Money(NANOS_PER_UNIT, "EUR"),
        transaction_id="t1",
        actor=Actor.system(),
    )
    token = api.token_for(portal_admin)
    path = developer_path(developer.email, "balance:debit")
    read_wallets = billing_api.wallets_balance

    def database_gone_after_the_change(**kwargs: Any) -> Any:
        monkeypatch.setattr(billing_api, "wallets_balance", read_wallets)  # once
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(billing_api, "wallets_balance", database_gone_after_the_change)
    failed = api.call("POST", path, debit_body("30", "usage-30"), token=token)

    message = error_of(failed, HTTPStatus.SERVICE_UNAVAILABLE)["message"]
    assert "not completed" not in message
    assert "may or may not have been applied" in message
    assert LedgerEntry.objects.filter(transaction_id="usage-30").exists()  # it was applied
    retry = api.call("POST", path, debit_body("30", "usage-30"), token=token)
    assert retry.status_code == HTTPStatus.OK and retry["Idempotent-Replayed"] == "true"
    assert Wallet.objects.get(currency="USD").balance == 70 * NANOS_PER_UNIT


@pytest.mark.django_db
def test_a_read_the_database_failed_says_nothing_changed(
    api: Api, developer: User, portal_admin: User, monkeypatch: pytest.MonkeyPatch
):
    def database_gone(**kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(billing_api, "wallets_balance", database_gone)
    failed = api.call(
        "GET", developer_path(developer.email, "balance"), token=api.token_for(portal_admin)
    )

    assert "nothing was changed" in error_of(failed, HTTPStatus.SERVICE_UNAVAILABLE)["message"]
