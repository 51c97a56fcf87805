"""Charges that fail: a declined card or one needing its holder ends the attempt, emails the
developer and backs off an hour; three in a row switch auto-recharge off. Stripe's own 5xx are
retried by the task under the same idempotency key until the charge goes through once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.auto_recharge.settings import auto_recharge_configure
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_debit
from billing.models import AutoRecharge, BillingAccount, LedgerEntry, RechargeAttempt, TopUp, Wallet
from billing.money import Money
from billing.tasks import auto_recharge_run
from tests.celery.conftest import (
    CARD,
    CONFIGURE_TASKS,
    OPENING,
    RECHARGE,
    THRESHOLD,
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

BACKOFF = timedelta(hours=1)
SUBJECT = "Subject: [Developer portal] Auto-recharge of your USD balance failed"
BALANCE_PAGE = "http://127.0.0.1:8000/account/balance/"


def balance(account: BillingAccount) -> int:
    return Wallet.objects.get(billing_account=account, currency="USD").balance


def debit(account: BillingAccount, transaction_id: str, amount: int = 1 * NANOS_PER_UNIT) -> bool:
    """A usage debit; True if it reported the threshold (and so enqueued a recharge)."""
    return wallet_debit(
        account=account,
        money=Money(amount, "USD"),
        transaction_id=transaction_id,
        actor=Actor.system(),
    ).below_recharge_threshold


def failed_attempts(count: int, worker, mail_dir: Path) -> list[RechargeAttempt]:
    """Wait until `count` attempts have failed and their emails are written."""
    wait_until(
        lambda: (
            RechargeAttempt.objects.filter(state=RechargeAttempt.State.FAILED).count() >= count
            and len(read_mails(mail_dir)) >= count
        ),
        what=f"{count} failed attempts and their emails",
        workers=(worker,),
    )
    return list(RechargeAttempt.objects.order_by("pk"))


def test_three_declines_in_a_row_back_off_then_switch_auto_recharge_off(
    recharge_account, start_worker, fake_stripe: FakeStripeProcess, mail_dir: Path
):
    fake_stripe.set_card_behaviour("card_declined", payment_method=CARD)
    worker = start_worker()
    worker.wait_results(CONFIGURE_TASKS)  # the check auto_recharge_configure asked for
    email = recharge_account.user.email
    recharge = AutoRecharge.objects.get(billing_account=recharge_account)

    for n in (1, 2, 3):
        started = timezone.now()
        assert debit(
            recharge_account, f"usage-{n}", amount=15 * NANOS_PER_UNIT if n == 1 else NANOS_PER_UNIT
        )
        attempts = failed_attempts(n, worker, mail_dir)
        finished = timezone.now()

        assert len(attempts) == n
        attempt = attempts[-1]
        assert attempt.state == RechargeAttempt.State.FAILED
        assert attempt.failure_reason == "Your card was declined."
        assert attempt.stripe_payment_intent_id.startswith("pi_")
        top_up = attempt.top_up
        assert (top_up.state, top_up.failure_reason) == (
            TopUp.State.FAILED,
            "Your card was declined.",
        )
        recharge.refresh_from_db()
        assert recharge.consecutive_failures == n
        assert started + BACKOFF <= recharge.retry_after <= finished + BACKOFF

        mails = read_mails(mail_dir)
        assert len(mails) == n
        assert SUBJECT in mails[-1]
        assert f"To: {email}" in mails[-1]
        assert "Your card was declined." in mails[-1]
        assert BALANCE_PAGE in mails[-1]
        if n < 3:
            assert recharge.enabled
            assert "We will try again in an hour." in mails[-1]
            # An hour passes.
            AutoRecharge.objects.filter(pk=recharge.pk).update(retry_after=None)

    assert not recharge.enabled
    assert recharge.disabled_reason == (
        "Switched off after 3 failed charges in a row. Update your card and switch it on again."
    )
    assert "Auto-recharge is now switched off." in read_mails(mail_dir)[-1]
    assert Wallet.objects.get(billing_account=recharge_account).recharge_below is None

    creates = payment_intent_creates(fake_stripe)
    assert [c["status"] for c in creates] == [402, 402, 402]
    assert [c["idempotency_key"] for c in creates] == [a.idempotency_key for a in attempts]
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOP_UP).exists()
    assert balance(recharge_account) == OPENING - 17 * NANOS_PER_UNIT

    # Switched off: a debit no longer asks, and a recharge asked for anyway charges nothing.
    assert not debit(recharge_account, "usage-4")
    auto_recharge_run.delay(recharge_account.pk, "USD")
    results = worker.wait_results(CONFIGURE_TASKS + 4)
    assert results[-1] == "not due"
    assert len(payment_intent_creates(fake_stripe)) == 3
    assert RechargeAttempt.objects.count() == 3
    assert len(read_mails(mail_dir)) == 3

    # The developer fixes the card and switches auto-recharge on again: it charges at once.
    fake_stripe.set_card_behaviour("succeed", payment_method=CARD)
    auto_recharge_configure(
        account=recharge_account,
        currency="USD",
        enabled=True,
        threshold=Money(THRESHOLD, "USD"),
        mode=AutoRecharge.Mode.FIXED,
        amount=Money(RECHARGE, "USD"),
        monthly_cap=None,
        changed_by=recharge_account.user,
    )
    assert worker.wait_results(CONFIGURE_TASKS + 5)[-1] == "SUCCEEDED"
    recharge.refresh_from_db()
    assert (recharge.enabled, recharge.consecutive_failures, recharge.retry_after) == (
        True,
        0,
        None,
    )
    assert recharge.disabled_reason == ""
    assert balance(recharge_account) == OPENING - 18 * NANOS_PER_UNIT + RECHARGE
    assert len(read_mails(mail_dir)) == 3
    call_command("check_ledger")


def test_a_card_needing_authentication_ends_the_attempt_like_a_decline(
    recharge_account, start_worker, fake_stripe: FakeStripeProcess, mail_dir: Path
):
    fake_stripe.set_card_behaviour("authentication_required", payment_method=CARD)
    worker = start_worker()
    worker.wait_results(CONFIGURE_TASKS)  # the check auto_recharge_configure asked for
    started = timezone.now()

    assert debit(recharge_account, "usage-1", amount=15 * NANOS_PER_UNIT)
    [attempt] = failed_attempts(1, worker, mail_dir)
    finished = timezone.now()

    reason = "Your card was declined. This transaction requires authentication."
    assert attempt.failure_reason == reason
    [intent] = fake_stripe.objects("payment_intent")
    assert intent["status"] == "requires_action"
    assert attempt.stripe_payment_intent_id == intent["id"]
    assert (attempt.top_up.state, attempt.top_up.stripe_payment_intent_id) == (
        TopUp.State.FAILED,
        intent["id"],
    )
    recharge = AutoRecharge.objects.get(billing_account=recharge_account)
    assert (recharge.enabled, recharge.consecutive_failures) == (True, 1)
    assert started + BACKOFF <= recharge.retry_after <= finished + BACKOFF
    [mail] = read_mails(mail_dir)
    assert SUBJECT in mail and reason in mail and BALANCE_PAGE in mail
    assert "We will try again in an hour." in mail
    assert worker.wait_results(CONFIGURE_TASKS + 1)[-1] == "FAILED"
    assert len(payment_intent_creates(fake_stripe)) == 1  # not retried
    assert balance(recharge_account) == OPENING - 15 * NANOS_PER_UNIT


def test_stripe_server_errors_are_retried_under_the_same_key_until_one_charge(
    recharge_account, start_worker, fake_stripe: FakeStripeProcess, mail_dir: Path
):
    fake_stripe.set_card_behaviour("server_error", payment_method=CARD, times=2)
    worker = start_worker()
    worker.wait_results(CONFIGURE_TASKS)  # the check auto_recharge_configure asked for

    assert debit(recharge_account, "usage-1", amount=15 * NANOS_PER_UNIT)
    attempt = wait_until(
        lambda: RechargeAttempt.objects.filter(state=RechargeAttempt.State.SUCCEEDED).first(),
        what="the attempt to succeed after two Stripe 500s",
        timeout=30,  # the task retries after 2 s, then after 4 s
        workers=(worker,),
    )

    creates = payment_intent_creates(fake_stripe)
    assert [c["status"] for c in creates] == [500, 500, 200]
    assert {c["idempotency_key"] for c in creates} == {attempt.idempotency_key}
    [intent] = fake_stripe.objects("payment_intent")
    assert attempt.stripe_payment_intent_id == intent["id"]
    assert [r.split(":")[0] for r in worker.retries()] == ["Retry in 2s", "Retry in 4s"]
    assert worker.wait_results(CONFIGURE_TASKS + 1)[-1] == "SUCCEEDED"
    assert RechargeAttempt.objects.count() == 1
    assert TopUp.objects.get().state == TopUp.State.SUCCEEDED
    [credit] = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOP_UP)
    assert (credit.transaction_id, credit.amount) == (intent["id"], RECHARGE)
    assert balance(recharge_account) == OPENING - 15 * NANOS_PER_UNIT + RECHARGE
    recharge = AutoRecharge.objects.get(billing_account=recharge_account)
    assert (recharge.consecutive_failures, recharge.retry_after) == (0, None)
    assert read_mails(mail_dir) == []
    call_command("check_ledger")


def test_a_stripe_500_saved_under_the_key_closes_the_attempt_and_a_new_one_charges_once(
    recharge_account, start_worker, fake_stripe: FakeStripeProcess, mail_dir: Path
):
    """Stripe keeps a 500 from inside the endpoint under the idempotency key and replays it
    for 24 hours: retrying that key cannot help. The attempt finds no charge, closes without
    counting against the developer, and the next attempt (a new key) charges once."""
    fake_stripe.set_card_behaviour("saved_server_error", payment_method=CARD, times=1)
    worker = start_worker()
    worker.wait_results(CONFIGURE_TASKS)

    assert debit(recharge_account, "usage-1", amount=15 * NANOS_PER_UNIT)
    first = wait_until(
        lambda: RechargeAttempt.objects.filter(state=RechargeAttempt.State.FAILED).first(),
        what="the attempt to close after the replayed 500",
        timeout=30,
        workers=(worker,),
    )
    creates = payment_intent_creates(fake_stripe)
    assert [(c["status"], c["replayed"]) for c in creates] == [(500, False), (500, True)]
    assert fake_stripe.objects("payment_intent") == []
    assert first.failure_reason.startswith("Stripe answered with an error and made no charge")
    recharge = AutoRecharge.objects.get(billing_account=recharge_account)
    assert recharge.consecutive_failures == 0 and recharge.enabled
    assert recharge.retry_after > timezone.now()  # a short pause, not the decline's hour
    assert recharge.retry_after < timezone.now() + timedelta(minutes=10)
    assert read_mails(mail_dir) == []  # Stripe's failure, not the developer's card
    assert balance(recharge_account) == OPENING - 15 * NANOS_PER_UNIT

    AutoRecharge.objects.filter(pk=recharge.pk).update(retry_after=timezone.now())  # pause over
    auto_recharge_run.delay(recharge_account.pk, "USD")
    second = wait_until(
        lambda: RechargeAttempt.objects.filter(state=RechargeAttempt.State.SUCCEEDED).first(),
        what="a new attempt to charge",
        timeout=30,
        workers=(worker,),
    )
    assert second.idempotency_key != first.idempotency_key
    [intent] = fake_stripe.objects("payment_intent")
    assert second.stripe_payment_intent_id == intent["id"]
    assert balance(recharge_account) == OPENING - 15 * NANOS_PER_UNIT + RECHARGE
    call_command("check_ledger")


def test_a_stripe_500_saved_after_the_charge_finds_the_payment_and_credits_once(
    recharge_account, start_worker, fake_stripe: FakeStripeProcess, mail_dir: Path
):
    """Stripe charged the card, then answered 500 and keeps replaying it: the attempt finds
    its PaymentIntent by metadata and credits it, with no second charge."""
    fake_stripe.set_card_behaviour("saved_server_error_after_charge", payment_method=CARD, times=1)
    worker = start_worker()
    worker.wait_results(CONFIGURE_TASKS)

    assert debit(recharge_account, "usage-1", amount=15 * NANOS_PER_UNIT)
    attempt = wait_until(
        lambda: RechargeAttempt.objects.filter(state=RechargeAttempt.State.SUCCEEDED).first(),
        what="the attempt to find its payment",
        timeout=30,
        workers=(worker,),
    )
    creates = payment_intent_creates(fake_stripe)
    assert [(c["status"], c["replayed"]) for c in creates] == [(500, False), (500, True)]
    [intent] = fake_stripe.objects("payment_intent")
    assert intent["status"] == "succeeded"
    assert attempt.stripe_payment_intent_id == intent["id"]
    [credit] = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TOP_UP)
    assert (credit.transaction_id, credit.amount) == (intent["id"], RECHARGE)
    assert RechargeAttempt.objects.count() == 1
    assert read_mails(mail_dir) == []
    call_command("check_ledger")
