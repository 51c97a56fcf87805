"""A debit below the threshold is recharged exactly once by a real worker, however many debits
report it at the same moment, and Stripe's confirmation afterwards does not credit again."""

from __future__ import annotations

import email as email_parser
import email.policy as email_policy
import threading
from http import HTTPStatus

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from billing.billing_accounts.selectors import organization_settings_get
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_debit
from billing.models import (
    AutoRecharge,
    BillingAccount,
    LedgerEntry,
    RechargeAttempt,
    StripeEvent,
    TopUp,
    TopUpLimit,
    Wallet,
)
from billing.money import Money
from billing.top_ups.settings import organization_top_up_settings_update
from tests.celery.conftest import (
    CARD,
    CONFIGURE_TASKS,
    OPENING,
    RECHARGE,
    deliver_webhook,
    payment_intent_creates,
    read_mails,
    wait_until,
)
from tests.conftest import NANOS_PER_UNIT
from tests.fakes.stripe_server import FakeStripeProcess

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.postgres,
    pytest.mark.redis,
]


def balance(account: BillingAccount) -> int:
    return Wallet.objects.get(billing_account=account, currency="USD").balance


def test_a_debit_below_the_threshold_charges_the_card_once_and_credits_once(
    recharge_account, start_worker, fake_stripe: FakeStripeProcess, client: Client
):
    worker = start_worker()
    worker.wait_results(CONFIGURE_TASKS)  # the check auto_recharge_configure asked for

    debit = wallet_debit(
        account=recharge_account,
        money=Money(15 * NANOS_PER_UNIT, "USD"),
        transaction_id="usage-1",
        actor=Actor.system(),
    )
    assert debit.below_recharge_threshold  # $30 - $15 = $15, below $20

    attempt = wait_until(
        lambda: RechargeAttempt.objects.filter(state=RechargeAttempt.State.SUCCEEDED).first(),
        what="a succeeded recharge attempt",
        workers=(worker,),
    )
    assert worker.wait_results(CONFIGURE_TASKS + 1)[-1] == "SUCCEEDED"

    recharge_account.refresh_from_db()
    assert recharge_account.stripe_customer_id.startswith("cus_")  # created by the app
    [create] = payment_intent_creates(fake_stripe)
    assert create["idempotency_key"] == attempt.idempotency_key
    assert create["status"] == HTTPStatus.OK
    params = create["params"]
    assert (params["off_session"], params["confirm"]) == ("true", "true")
    assert (params["amount"], params["currency"]) == ("5000", "usd")
    assert (params["customer"], params["payment_method"]) == (
        recharge_account.stripe_customer_id,
        CARD,
    )
    assert params["metadata"]["recharge_attempt_id"] == str(attempt.pk)
    [intent] = fake_stripe.objects("payment_intent")
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 5000)

    assert RechargeAttempt.objects.count() == 1
    assert attempt.stripe_payment_intent_id == intent["id"]
    assert attempt.amount == RECHARGE
    [top_up] = TopUp.objects.all()
    assert (top_up.state, top_up.source, top_up.amount) == (
        TopUp.State.SUCCEEDED,
        TopUp.Source.AUTO_RECHARGE,
        RECHARGE,
    )
    assert top_up.stripe_payment_intent_id == top_up.ledger_transaction_id == intent["id"]
    [credit] = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOP_UP)
    assert (credit.transaction_id, credit.amount) == (intent["id"], RECHARGE)
    assert credit.actor_type == LedgerEntry.ActorType.STRIPE
    assert (
        balance(recharge_account) == OPENING - 15 * NANOS_PER_UNIT + RECHARGE == 65 * NANOS_PER_UNIT
    )

    # Stripe's webhook reports the same payment afterwards: processed, not credited again.
    event = fake_stripe.payment_intent_event(intent["id"], "payment_intent.succeeded")
    for _ in range(2):  # and a duplicate delivery of it
        assert deliver_webhook(client, event).status_code == HTTPStatus.OK
    assert StripeEvent.objects.get(pk=event["id"]).status == StripeEvent.Status.PROCESSED
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOP_UP).count() == 1
    assert balance(recharge_account) == 65 * NANOS_PER_UNIT
    assert RechargeAttempt.objects.get().state == RechargeAttempt.State.SUCCEEDED
    assert len(payment_intent_creates(fake_stripe)) == 1
    call_command("check_ledger")


# 25 threads of 8 debits: each thread on its own PostgreSQL connection, all released at once
# (200 connections at once would exceed PostgreSQL's default max_connections of 100).
THREADS, DEBITS_PER_THREAD, DEBIT = 25, 8, NANOS_PER_UNIT // 10


def test_two_hundred_concurrent_debits_crossing_the_threshold_give_one_recharge(
    recharge_account, start_worker, fake_stripe: FakeStripeProcess
):
    worker = start_worker()
    worker.wait_results(CONFIGURE_TASKS)  # the check auto_recharge_configure asked for
    worker.wait_results(CONFIGURE_TASKS)
    opening = 21 * NANOS_PER_UNIT  # just above the $20 threshold: almost every debit reports it
    wallet_debit(
        account=recharge_account,
        money=Money(OPENING - opening, "USD"),
        transaction_id="usage-to-21",
        actor=Actor.system(),
    )
    assert balance(recharge_account) == opening

    barrier = threading.Barrier(THREADS)
    below: list[int] = [0] * THREADS
    errors: list[BaseException] = []

    def debit_batch(n: int) -> None:
        try:
            connection.ensure_connection()  # this thread's own connection, opened up front
            barrier.wait(timeout=30)
            for k in range(DEBITS_PER_THREAD):
                result = wallet_debit(
                    account=recharge_account,
                    money=Money(DEBIT, "USD"),
                    transaction_id=f"usage-{n}-{k}",
                    actor=Actor.system(),
                )
                below[n] += result.below_recharge_threshold
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=debit_batch, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    debits = THREADS * DEBITS_PER_THREAD
    assert debits == 200
    triggers = sum(below)
    # Each of these enqueued a recharge; several raced for it.
    assert triggers > 1, f"only {triggers} debit(s) reported the threshold: no race happened"

    results = worker.wait_results(CONFIGURE_TASKS + triggers, timeout=60)
    assert len(results) == CONFIGURE_TASKS + triggers
    assert set(results) == {"not due", "SUCCEEDED"}, results

    [attempt] = RechargeAttempt.objects.all()
    assert attempt.state == RechargeAttempt.State.SUCCEEDED
    # A task arriving while the attempt is in flight resumes it under the same key: Stripe
    # answers it with the first PaymentIntent, so there is one charge however many asked.
    creates = payment_intent_creates(fake_stripe)
    assert {c["idempotency_key"] for c in creates} == {attempt.idempotency_key}
    assert [c["replayed"] for c in creates] == [False] + [True] * (len(creates) - 1)
    [intent] = fake_stripe.objects("payment_intent")
    assert intent["id"] == attempt.stripe_payment_intent_id
    assert TopUp.objects.get().state == TopUp.State.SUCCEEDED
    [credit] = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOP_UP)
    assert credit.transaction_id == attempt.stripe_payment_intent_id
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.USAGE).count() == 1 + debits
    assert balance(recharge_account) == opening - debits * DEBIT + RECHARGE == 51 * NANOS_PER_UNIT
    call_command("check_ledger")


ALERTS = "billing-alerts@example.com"


def test_more_than_three_recharges_in_ten_minutes_switch_it_off_and_alert_an_admin(
    recharge_account, start_worker, fake_stripe: FakeStripeProcess, mail_dir
):
    org = organization_settings_get()
    organization_top_up_settings_update(
        changed_by=None,
        top_up_wait_seconds=org.top_up_wait_seconds,
        prepaid_grace_nanos=org.prepaid_grace_nanos,
        notification_email=ALERTS,
        limits=list(TopUpLimit.objects.values("currency", "minimum", "maximum", "default")),
    )
    worker = start_worker()
    worker.wait_results(CONFIGURE_TASKS)

    for n in (1, 2, 3, 4):
        amount = (
            15 * NANOS_PER_UNIT if n == 1 else 50 * NANOS_PER_UNIT
        )  # each time from $65 (or $30) down to $15
        assert wallet_debit(
            account=recharge_account,
            money=Money(amount, "USD"),
            transaction_id=f"usage-{n}",
            actor=Actor.system(),
        ).below_recharge_threshold
        assert worker.wait_results(CONFIGURE_TASKS + n)[-1] == "SUCCEEDED"
        assert balance(recharge_account) == 65 * NANOS_PER_UNIT

    # A fifth need within ten minutes: the guard stops auto-recharge instead of charging.
    assert wallet_debit(
        account=recharge_account,
        money=Money(50 * NANOS_PER_UNIT, "USD"),
        transaction_id="usage-5",
        actor=Actor.system(),
    ).below_recharge_threshold
    assert worker.wait_results(CONFIGURE_TASKS + 5)[-1] == "not due"
    recharge = AutoRecharge.objects.get(billing_account=recharge_account)
    assert not recharge.enabled
    assert recharge.disabled_reason == (
        "Switched off by the runaway guard: more than 3 recharges in 10 minutes."
    )
    assert Wallet.objects.get(billing_account=recharge_account).recharge_below is None
    assert len(payment_intent_creates(fake_stripe)) == 4
    assert RechargeAttempt.objects.filter(state=RechargeAttempt.State.SUCCEEDED).count() == 4
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOP_UP).count() == 4
    assert balance(recharge_account) == 15 * NANOS_PER_UNIT
    # Only the admins' mail: the developer may also get a low-balance alert, once the guard
    # has switched auto-recharge off (whether the alert check ran before or after is a race).
    [alert] = wait_until(
        lambda: [m for m in read_mails(mail_dir) if f"To: {ALERTS}" in m],
        what="the admin alert",
        workers=(worker,),
    )
    email = recharge_account.user.email
    # Read as a mail reader does: a long subject is folded over two header lines.
    subject = email_parser.message_from_string(alert, policy=email_policy.default)["Subject"]
    assert subject == f"[Developer portal] Auto-recharge stopped for {email}"
    call_command("check_ledger")
