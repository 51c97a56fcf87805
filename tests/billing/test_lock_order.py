"""Lock order on PostgreSQL. A debit reads the billing account FOR KEY SHARE while it waits for
the wallet row (billing/ledger.py); anything that locks the account FOR UPDATE and then waits for
a lock a debit's transaction holds closes a cycle. With 200 concurrent debits, the auto-recharge
claim did exactly that (claim -> debit -> the recharge's credit -> claim): "deadlock detected".
These tests hold a debit's account lock open and check that the claim and Add credit do not wait
for it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.db import connection, connections

from billing.auto_recharge import auto_recharge_claim, auto_recharge_configure, card_save
from billing.ledger import Actor, wallet_credit
from billing.models import BillingTypeChange, TopUp, Wallet
from billing.money import money_parse
from billing.services import billing_type_set
from billing.top_ups import top_up_start
from tests.factories import DeveloperFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def usd(text: str):
    return money_parse(text, "USD")


@pytest.fixture
def account(postgres):
    account = DeveloperFactory().billing_account
    billing_type_set(
        account=account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    account.refresh_from_db()
    return account


@pytest.fixture
def debit_holds_the_account(account) -> Iterator[None]:
    """Another connection holds the account row FOR KEY SHARE, as a debit waiting for its
    wallet does, until the test ends."""
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute(
                    "SELECT id FROM billing_billingaccount WHERE id = %s FOR KEY SHARE",
                    [account.pk],
                )
                held.set()
                done.wait(30)
                cursor.execute("ROLLBACK")
        finally:
            other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '3s'")  # waiting at all fails the test
    yield
    done.set()
    thread.join()
    with connection.cursor() as cursor:
        cursor.execute("RESET lock_timeout")


def test_the_recharge_claim_does_not_wait_for_a_debit(account, debit_holds_the_account):
    card_save(account=account, payment_method_id="pm_offline_visa_4242", brand="visa", last4="4242")
    account.refresh_from_db()
    auto_recharge_configure(
        account=account,
        currency="USD",
        enabled=True,
        threshold=usd("20"),
        mode="FIXED",
        amount=usd("50"),
        monthly_cap=None,
        changed_by=account.user,
    )
    wallet_credit(account=account, money=usd("100"), transaction_id="opening", actor=Actor.system())
    Wallet.objects.update(balance=5 * 10**9)  # below the threshold, no debit to trigger it

    attempt = auto_recharge_claim(account_id=account.pk, currency="USD", task_id="t1")

    assert attempt is not None and attempt.amount == 50 * 10**9


def test_add_credit_does_not_wait_for_a_debit(account, debit_holds_the_account):
    top_up = top_up_start(account=account, money=usd("20"), base_url="http://127.0.0.1")

    assert TopUp.objects.get(pk=top_up.pk).state == TopUp.State.PENDING
