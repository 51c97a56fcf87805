"""A worker killed while Stripe is answering the charge: Stripe has taken the money, the portal
has not recorded it. Whoever picks the attempt up again (the broker redelivering the task, or the
sweep finding the stale attempt) charges under the same idempotency key: one charge, one credit."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.core.management import call_command
from django.db.models import F

from billing.auto_recharge.selectors import STALE_IN_FLIGHT
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_debit
from billing.models import BillingAccount, LedgerEntry, RechargeAttempt, TopUp, Wallet
from billing.money import Money
from billing.tasks import auto_recharge_sweep
from tests.celery.conftest import (
    CONFIGURE_TASKS,
    OPENING,
    RECHARGE,
    Broker,
    deliver_webhook,
    payment_intent_creates,
    wait_until,
)
from tests.conftest import NANOS_PER_UNIT
from tests.fakes.stripe_server import FakeStripeProcess

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.postgres,
    pytest.mark.redis,
]

# Stripe creates the PaymentIntent at once but answers this late; the worker dies meanwhile.
SLOW_ANSWER_SECONDS = 10
BELOW = OPENING - 15 * NANOS_PER_UNIT
VISIBILITY_TIMEOUT = 1  # seconds, for the worker that takes over a lost task


def balance(account: BillingAccount) -> int:
    return Wallet.objects.get(billing_account=account, currency="USD").balance


def kill_worker_while_stripe_answers(
    account: BillingAccount, start_worker, fake: FakeStripeProcess, broker: Broker
) -> RechargeAttempt:
    fake.set_response_delay(SLOW_ANSWER_SECONDS, path="/v1/payment_intents", method="POST")
    first = start_worker()
    first.wait_results(CONFIGURE_TASKS)
    wallet_debit(
        account=account,
        money=Money(15 * NANOS_PER_UNIT, "USD"),
        transaction_id="usage-1",
        actor=Actor.system(),
    )
    wait_until(
        lambda: payment_intent_creates(fake),
        what="the PaymentIntent create to reach Stripe",
        workers=(first,),
    )
    first.kill()

    # Stripe charged the card; the portal knows nothing of it yet.
    [intent] = fake.objects("payment_intent")
    assert intent["status"] == "succeeded"
    attempt = RechargeAttempt.objects.get()
    assert attempt.state == RechargeAttempt.State.IN_FLIGHT
    assert attempt.stripe_payment_intent_id == ""
    assert TopUp.objects.get().state == TopUp.State.PENDING
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOP_UP).exists()
    assert balance(account) == BELOW
    assert first.results() == ["not due"]  # the charge never finished there
    assert broker.unacked() == 1  # acks_late: the broker still holds the task for redelivery
    return attempt


def start_worker_after_visibility_timeout(start_worker, broker: Broker):
    """A worker gives back messages unacknowledged for longer than its visibility timeout when
    it starts (and then only every ~100 s: kombu's unacked_restore_interval x throttle)."""
    wait_until(
        lambda: broker.oldest_unacked_age() > VISIBILITY_TIMEOUT + 0.2,
        what="the lost task to outlive the new worker's visibility timeout",
    )
    return start_worker(CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT))


def assert_charged_once(
    account: BillingAccount, attempt: RechargeAttempt, fake: FakeStripeProcess
) -> None:
    creates = payment_intent_creates(fake)
    assert len(creates) == 2
    assert {c["idempotency_key"] for c in creates} == {attempt.idempotency_key}
    assert [c["replayed"] for c in creates] == [False, True]  # the second got the first's answer
    [intent] = fake.objects("payment_intent")
    assert RechargeAttempt.objects.count() == 1
    attempt.refresh_from_db()
    assert attempt.state == RechargeAttempt.State.SUCCEEDED
    assert attempt.stripe_payment_intent_id == intent["id"]
    assert TopUp.objects.get().state == TopUp.State.SUCCEEDED
    [credit] = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOP_UP)
    assert (credit.transaction_id, credit.amount) == (intent["id"], RECHARGE)
    assert balance(account) == BELOW + RECHARGE == 65 * NANOS_PER_UNIT
    call_command("check_ledger")


def test_a_task_lost_with_its_worker_is_redelivered_and_charges_once(
    recharge_account, start_worker, fake_stripe: FakeStripeProcess, celery_broker: Broker
):
    attempt = kill_worker_while_stripe_answers(
        recharge_account, start_worker, fake_stripe, celery_broker
    )

    # A new worker with a short visibility timeout takes the unacknowledged task back.
    second = start_worker_after_visibility_timeout(start_worker, celery_broker)
    wait_until(
        lambda: RechargeAttempt.objects.filter(state=RechargeAttempt.State.SUCCEEDED).exists(),
        what="the redelivered task to finish the attempt",
        workers=(second,),
    )
    assert second.wait_results(1) == ["SUCCEEDED"]
    wait_until(lambda: celery_broker.unacked() == 0, what="the ack", workers=(second,))
    assert_charged_once(recharge_account, attempt, fake_stripe)


def test_the_sweep_resumes_an_attempt_whose_worker_died(
    recharge_account, start_worker, fake_stripe: FakeStripeProcess, celery_broker: Broker
):
    attempt = kill_worker_while_stripe_answers(
        recharge_account, start_worker, fake_stripe, celery_broker
    )

    # The default visibility timeout (300 s) keeps the task with the dead worker; the attempt
    # is made as old as one the sweep considers abandoned, and beat's sweep runs.
    second = start_worker()
    RechargeAttempt.objects.filter(pk=attempt.pk).update(
        created_at=F("created_at") - STALE_IN_FLIGHT - timedelta(seconds=1)
    )
    auto_recharge_sweep.delay()
    wait_until(
        lambda: RechargeAttempt.objects.filter(state=RechargeAttempt.State.SUCCEEDED).exists(),
        what="the sweep to resume the attempt",
        workers=(second,),
    )
    assert second.wait_results(1, task="auto_recharge_sweep") == ["1"]
    assert second.wait_results(1) == ["SUCCEEDED"]
    # The lost task was not what resumed it (once the recharge's receipt task is done too).
    wait_until(lambda: celery_broker.unacked() == 1, what="only the lost task", workers=(second,))
    assert_charged_once(recharge_account, attempt, fake_stripe)


def test_a_pool_process_killed_mid_charge_is_replaced_and_the_task_run_again(
    recharge_account, start_worker, fake_stripe: FakeStripeProcess, celery_broker: Broker
):
    fake_stripe.set_response_delay(SLOW_ANSWER_SECONDS, path="/v1/payment_intents", method="POST")
    worker = start_worker(concurrency=1)
    worker.wait_results(CONFIGURE_TASKS)
    [pool_process] = worker.pool_processes()
    wallet_debit(
        account=recharge_account,
        money=Money(15 * NANOS_PER_UNIT, "USD"),
        transaction_id="usage-1",
        actor=Actor.system(),
    )
    wait_until(
        lambda: payment_intent_creates(fake_stripe),
        what="the PaymentIntent create to reach Stripe",
        workers=(worker,),
    )
    attempt = RechargeAttempt.objects.get()

    # Only the pool process dies: the main process notices (billiard checks every few seconds),
    # and with acks_late and CELERY_TASK_REJECT_ON_WORKER_LOST gives the task back to the broker.
    os.kill(pool_process, signal.SIGKILL)
    wait_until(
        lambda: RechargeAttempt.objects.filter(state=RechargeAttempt.State.SUCCEEDED).exists(),
        what="the task to run again in a new pool process",
        workers=(worker,),
    )
    assert worker.process.poll() is None
    assert pool_process not in worker.pool_processes()
    assert "WorkerLostError" in worker.log()
    assert worker.wait_results(CONFIGURE_TASKS + 1)[-1] == "SUCCEEDED"
    assert_charged_once(recharge_account, attempt, fake_stripe)


def test_stripe_webhook_settles_a_dead_workers_attempt_and_the_redelivered_task_does_nothing(
    recharge_account, start_worker, fake_stripe: FakeStripeProcess, celery_broker: Broker, client
):
    attempt = kill_worker_while_stripe_answers(
        recharge_account, start_worker, fake_stripe, celery_broker
    )
    [intent] = fake_stripe.objects("payment_intent")

    event = fake_stripe.payment_intent_event(intent["id"], "payment_intent.succeeded")
    assert deliver_webhook(client, event).status_code == HTTPStatus.OK
    attempt.refresh_from_db()
    assert attempt.state == RechargeAttempt.State.SUCCEEDED
    assert balance(recharge_account) == BELOW + RECHARGE

    second = start_worker_after_visibility_timeout(start_worker, celery_broker)
    assert second.wait_results(1) == ["not due"]  # the redelivered task: nothing left to do
    # acks_late: the worker acknowledges just after it logs the result.
    wait_until(lambda: celery_broker.unacked() == 0, what="the ack", workers=(second,))
    [create] = payment_intent_creates(fake_stripe)
    assert create["idempotency_key"] == attempt.idempotency_key
    assert [i["id"] for i in fake_stripe.objects("payment_intent")] == [intent["id"]]
    assert TopUp.objects.get().state == TopUp.State.SUCCEEDED
    [credit] = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOP_UP)
    assert credit.transaction_id == intent["id"]
    assert balance(recharge_account) == BELOW + RECHARGE == 65 * NANOS_PER_UNIT
    call_command("check_ledger")
