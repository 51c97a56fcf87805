"""Lock order on PostgreSQL. A debit reads the billing account FOR KEY SHARE while it waits for
the wallet row (billing/ledger.py); anything that locks the account FOR UPDATE and then waits for
a lock a debit's transaction holds closes a cycle. With 200 concurrent debits, the auto-recharge
claim did exactly that (claim -> debit -> the recharge's credit -> claim): "deadlock detected".
These tests hold a debit's account lock open and check that the claim and Add credit do not wait
for it.

The other pairs below are checked the same way, one lock at a time: another session takes the
first lock of one transaction, the code under test runs in a thread until it waits for that
lock, and the session then asks (NOWAIT) for the lock its transaction would take next. Getting
it means the code did not take the two locks in the opposite order, so the pair cannot
deadlock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import OperationalError, connection, connections, transaction

from billing.auto_recharge.charge import recharge_attempt_succeed
from billing.auto_recharge.claim import auto_recharge_claim
from billing.billing_type.services import billing_type_set
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit, wallet_debit
from billing.models import BillingAccount, BillingTypeChange, TopUp, TrustTier, Wallet
from billing.subscriptions.services import subscription_purchase
from billing.top_ups.checkout import top_up_start
from billing.top_ups.limits import top_up_check
from tests.conftest import NANOS_PER_UNIT, usd, wait_until_blocked
from tests.factories import DeveloperFactory, auto_recharge_on, published_plan

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def account(postgres, prepaid_account):
    return prepaid_account


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
    auto_recharge_on(account, threshold="20", amount="50")
    wallet_credit(account=account, money=usd("100"), transaction_id="opening", actor=Actor.system())
    Wallet.objects.update(balance=5 * 10**9)  # below the threshold, no debit to trigger it

    attempt = auto_recharge_claim(account_id=account.pk, currency="USD", task_id="t1")

    assert attempt is not None and attempt.amount == 50 * 10**9


def test_add_credit_does_not_wait_for_a_debit(account, debit_holds_the_account):
    top_up = top_up_start(account=account, money=usd("20"), base_url="http://127.0.0.1")

    assert TopUp.objects.get(pk=top_up.pk).state == TopUp.State.PENDING


# ---- One lock at a time ----


class OtherSession:
    """A second database session driven from the test's thread, like another process."""

    def __init__(self) -> None:
        self.db = connections.create_connection("default")

    def run(self, sql: str, params: list[Any] | None = None) -> None:
        with self.db.cursor() as cursor:
            cursor.execute(sql, params or [])

    def can_lock(self, sql: str, params: list[Any]) -> bool:
        """Whether a NOWAIT lock is free now; a refusal aborts the session's transaction."""
        try:
            self.run(sql, params)
        except OperationalError:
            return False
        return True


@pytest.fixture
def other_session(postgres) -> Iterator[OtherSession]:
    session = OtherSession()
    yield session
    session.run("ROLLBACK")
    session.db.close()


def in_thread(call: Callable[[], Any]) -> Callable[[], Any]:
    """Start `call` on its own connection; the returned function waits for its result."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # raised again in the test's thread
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()

    def result() -> Any:
        thread.join(30)
        assert not thread.is_alive()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    result.thread = thread  # type: ignore[attr-defined]
    return result


@pytest.fixture
def recharge_due(account) -> None:
    """Auto-recharge of 50 USD below 20, and a balance of 5: a recharge is due."""
    wallet_credit(account=account, money=usd("100"), transaction_id="opening", actor=Actor.system())
    auto_recharge_on(account, threshold="20", amount="50")
    Wallet.objects.update(balance=5 * NANOS_PER_UNIT)  # below the threshold, no debit to trigger it


@pytest.fixture
def recharge_in_flight(account, recharge_due):
    """An auto-recharge attempt claimed and charged, its credit not yet made."""
    attempt = auto_recharge_claim(account_id=account.pk, currency="USD", task_id="t1")
    assert attempt is not None
    return attempt


def test_a_recharge_credit_does_not_hold_the_wallet_while_waiting_for_the_settings(
    account, recharge_in_flight, other_session
):
    """Saving auto-recharge settings locks the auto-recharge, then writes the wallet's
    threshold. The recharge's success credited the wallet first and then reset the failure
    count on the auto-recharge: the opposite order, so the two could deadlock."""
    attempt = recharge_in_flight
    other_session.run("BEGIN")
    other_session.run(
        "SELECT id FROM billing_autorecharge WHERE id = %s FOR UPDATE", [attempt.auto_recharge_id]
    )
    succeed = in_thread(
        lambda: recharge_attempt_succeed(
            attempt_id=attempt.pk, payment_intent_id="pi_lock_order", amount=5000, currency="usd"
        )
    )
    assert wait_until_blocked(succeed.thread)

    wallet_free = other_session.can_lock(
        "SELECT id FROM billing_wallet WHERE billing_account_id = %s FOR NO KEY UPDATE NOWAIT",
        [account.pk],
    )
    other_session.run("ROLLBACK")
    succeed()

    assert wallet_free, "the credit held the wallet while it waited for the auto-recharge"
    assert Wallet.objects.get(billing_account=account).balance == 55 * NANOS_PER_UNIT


def test_a_billing_type_change_takes_the_organisation_before_the_account(other_session):
    """Changing the organisation default locks the settings row, then reads each following
    developer's account (their history rows, their ledger entries). A developer's own change
    locked the account, then waited for the settings row in its ledger entry: a deadlock."""
    account = DeveloperFactory().billing_account  # follows the default, Postpaid
    wallet_debit(account=account, money=usd("5"), transaction_id="usage", actor=Actor.system())
    other_session.run("BEGIN")
    other_session.run("SELECT id FROM billing_organizationsettings FOR UPDATE")
    change = in_thread(
        lambda: billing_type_set(
            account=account,
            billing_type="PREPAID",
            changed_by=None,
            source=BillingTypeChange.Source.ADMIN,
        )
    )
    assert wait_until_blocked(change.thread)

    account_free = other_session.can_lock(
        "SELECT id FROM billing_billingaccount WHERE id = %s FOR KEY SHARE NOWAIT", [account.pk]
    )
    other_session.run("ROLLBACK")
    change()

    assert account_free, "the change locked the account before the organisation settings"
    assert BillingAccount.objects.get(pk=account.pk).billing_type == "PREPAID"
    assert Wallet.objects.get(billing_account=account).balance == 0  # usage invoiced apart


def test_a_recharge_claim_counts_an_add_credit_being_started_in_the_monthly_total(
    account, recharge_due
):
    """The trust tier's monthly total counts Add credit and auto-recharge together. Add credit
    checks it under a lock on the account; the claim checked it without, so a checkout started
    at the same moment was not counted and both passed the total together."""
    TrustTier.objects.filter(level=account.trust_tier, currency="USD").update(
        max_monthly_total=100 * NANOS_PER_UNIT
    )
    held, done = threading.Event(), threading.Event()

    def add_credit_being_started() -> None:
        # What top_up_start does before it commits: lock, check, record the pending top-up.
        try:
            with transaction.atomic():
                BillingAccount.objects.select_for_update(no_key=True).filter(pk=account.pk).first()
                top_up_check(account=account, money=usd("60"))
                TopUp.objects.create(
                    billing_account=account, currency="USD", amount=60 * NANOS_PER_UNIT
                )
                held.set()
                done.wait(30)
        finally:
            connection.close()

    starting = threading.Thread(target=add_credit_being_started)
    starting.start()
    assert held.wait(10)
    claim = in_thread(lambda: auto_recharge_claim(account_id=account.pk, currency="USD"))
    wait_until_blocked(claim.thread)  # with the fix; without it the claim goes through at once
    done.set()
    starting.join(30)

    assert claim() is None  # 60 + 50 would pass the tier's 100 a month
    assert list(TopUp.objects.values_list("source", "amount")) == [
        ("CHECKOUT", 60 * NANOS_PER_UNIT)
    ]


def test_a_recharge_claim_waiting_for_a_billing_type_change_sees_the_new_type(
    account, recharge_due, other_session
):
    """An admin switches the developer to Postpaid while a recharge is being claimed: the claim
    waits for the change (the account lock) and must then judge by the new type, not by the
    account it read before waiting, or it charges the card of a postpaid developer."""
    other_session.run("BEGIN")
    other_session.run(
        "SELECT id FROM billing_billingaccount WHERE id = %s FOR UPDATE", [account.pk]
    )
    other_session.run(
        "UPDATE billing_billingaccount SET billing_type = 'POSTPAID' WHERE id = %s", [account.pk]
    )
    claim = in_thread(lambda: auto_recharge_claim(account_id=account.pk, currency="USD"))
    assert wait_until_blocked(claim.thread)
    other_session.run("COMMIT")

    assert claim() is None
    assert not TopUp.objects.filter(source="AUTO_RECHARGE").exists()


def test_a_purchase_does_not_wait_for_a_debit(account, debit_holds_the_account):
    """The purchase takes the account FOR NO KEY UPDATE, which a debit's FOR KEY SHARE does
    not block: buying a plan is not held up by the developer's own usage."""
    plan = published_plan()

    bought = subscription_purchase(account=account, product=plan.product, actor=Actor.system())

    assert bought.subscription.pk is not None


@pytest.mark.parametrize("held", ["organisation", "account"])
def test_counting_credit_lots_takes_the_settings_and_account_before_the_wallet(
    account, other_session, held
):
    """A refund (and expire_credits) counts the wallet's lots under the wallet's lock, then
    books its entry, which reads the settings and the account FOR KEY SHARE. Locking the wallet
    first would deadlock with a billing-type change, which holds the settings or the account
    FOR UPDATE and then the wallets."""
    from billing.expiry.lots import lots_count  # noqa: PLC0415

    wallet_credit(account=account, money=usd("10"), transaction_id="opening", actor=Actor.system())
    wallet = Wallet.objects.get(billing_account=account)
    other_session.run("BEGIN")
    if held == "organisation":
        other_session.run("SELECT id FROM billing_organizationsettings FOR UPDATE")
    else:
        other_session.run(
            "SELECT id FROM billing_billingaccount WHERE id = %s FOR UPDATE", [account.pk]
        )
    count = in_thread(lambda: lots_count(wallet_id=wallet.pk).total)
    assert wait_until_blocked(count.thread)

    wallet_free = other_session.can_lock(
        "SELECT id FROM billing_wallet WHERE id = %s FOR NO KEY UPDATE NOWAIT", [wallet.pk]
    )
    other_session.run("ROLLBACK")

    assert count() == 10 * NANOS_PER_UNIT
    assert wallet_free, f"the count locked the wallet before the {held}"
