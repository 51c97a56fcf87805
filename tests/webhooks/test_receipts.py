"""Receipts (issue 13): the developer is emailed once for every credited top-up (Add credit or
auto-recharge) and for every refund or dispute that takes money back or gives it back, after
the commit, however often Stripe repeats itself.

These tests commit for real (transactional), so that receipts go out after the commit of the
transaction that moved the money, as they do in production.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.db.models import F
from django.test import Client

from billing.auto_recharge.settings import auto_recharge_configure
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit, wallet_debit
from billing.locks import top_up_lock
from billing.models import BillingAccount, SentNotification, TopUp
from billing.notifications import receipts
from billing.offline import offline_checkout_event
from billing.payments.cards import card_save
from billing.tasks import receipts_sweep, top_up_receipt_send
from billing.top_ups.confirmations import top_up_succeed
from billing.webhooks.receive import webhook_receive
from tests.conftest import forget_broker_connections, usd
from tests.fakes.stripe_server import FakeStripe, signed_event
from tests.fixtures.stripe import WEBHOOK_SECRET, add_credit, latest_top_up, post_raw

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

BALANCE_PAGE = "http://127.0.0.1:8000/account/balance/"
# Nothing listens on the discard port: a connection there is refused, as by a server that is down.
REFUSED = ("127.0.0.1", 9)


def send(event: dict[str, Any]) -> int:
    """Deliver an event to the webhook as Stripe does."""
    payload, header = signed_event(event, WEBHOOK_SECRET)
    return post_raw(Client(), payload, header).status_code


def mails_to(user: Any) -> list[mail.EmailMessage]:
    return [message for message in mail.outbox if message.to == [user.email]]


def line(body: str, label: str) -> str:
    """The value on a receipt's "Label:  value" line."""
    [value] = re.findall(rf"^{re.escape(label)}: +(.*)$", body, flags=re.MULTILINE)
    return value


def sweep_later() -> int:
    """The beat's sweep, run once the receipts owed are older than its delay."""
    older = F("created_at") - receipts.RECEIPT_SWEEP_DELAY - timedelta(seconds=1)
    SentNotification.objects.update(created_at=older)
    return receipts_sweep()


@pytest.fixture
def top_up(fake_stripe: FakeStripe, prepaid_client: Client) -> TopUp:
    """A $20 top-up with an open Checkout Session in the fake Stripe."""
    add_credit(prepaid_client, "20")
    return latest_top_up()


@pytest.fixture
def paid(fake_stripe: FakeStripe, top_up: TopUp) -> dict[str, Any]:
    """The developer paid with the fake's card (Visa 4242): checkout.session.completed."""
    return fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id)


def payment_intent(event: dict[str, Any]) -> str:
    return event["data"]["object"]["payment_intent"]


@pytest.fixture
def mail_server_down(settings: Any) -> Iterator[Any]:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = REFUSED
    yield settings
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def broker_down(settings: Any) -> Iterator[None]:
    """A Celery broker that refuses every publish, as Redis down would."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://{REFUSED[0]}:{REFUSED[1]}/0"
    forget_broker_connections()
    yield
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_BROKER_URL = "memory://"
    forget_broker_connections()


# --- Add credit ---------------------------------------------------------------------------------


def test_a_paid_checkout_sends_one_receipt_with_the_card_and_the_new_balance(
    top_up, paid, prepaid_developer
):
    account = top_up.billing_account
    wallet_credit(account=account, money=usd("5"), transaction_id="opening", actor=Actor.system())

    assert send(paid) == HTTPStatus.OK

    [receipt] = mails_to(prepaid_developer)
    assert receipt.subject == "[Developer portal] Receipt: $20.00 added to your USD balance"
    assert "$20.00 was added to your USD balance. This is your receipt." in receipt.body
    assert line(receipt.body, "Amount") == "$20.00"
    assert line(receipt.body, "Paid with") == "Visa •••• 4242"  # Stripe's answer for the charge
    assert line(receipt.body, "New balance") == "$25.00"
    assert re.fullmatch(r"\d{1,2} \w+ \d{4}, \d\d:\d\d UTC", line(receipt.body, "Date"))
    assert line(receipt.body, "Reference") == str(top_up.public_id)
    assert BALANCE_PAGE in receipt.body
    notification = SentNotification.objects.get()
    assert notification.key == f"receipt:top-up:{top_up.public_id}"
    assert notification.recipient == prepaid_developer.email and notification.sent_at


def test_the_same_payment_event_delivered_ten_times_sends_one_receipt(
    fake_stripe, top_up, paid, prepaid_developer
):
    succeeded = fake_stripe.payment_intent_succeeded_event(payment_intent(paid))

    answers = [send(paid) for _ in range(10)] + [send(succeeded) for _ in range(10)]

    assert answers == [HTTPStatus.OK] * 20
    [receipt] = mails_to(prepaid_developer)
    assert line(receipt.body, "New balance") == "$20.00"


def test_the_receipt_goes_after_the_commit_and_never_for_a_credit_rolled_back(
    top_up, paid, prepaid_developer
):
    def credit() -> None:
        locked = top_up_lock(top_up_id=top_up.pk)
        top_up_succeed(
            top_up=locked, payment_intent_id=payment_intent(paid), amount=2000, currency="usd"
        )

    with pytest.raises(RuntimeError), transaction.atomic():
        credit()
        raise RuntimeError("rolled back")
    assert mails_to(prepaid_developer) == []
    assert not SentNotification.objects.exists()

    with transaction.atomic():
        credit()
        assert mails_to(prepaid_developer) == []  # not while the credit is uncommitted
    assert len(mails_to(prepaid_developer)) == 1


def test_a_receipt_still_goes_out_when_stripe_cannot_say_which_card(
    top_up, paid, prepaid_developer, settings
):
    settings.STRIPE_API_BASE = f"http://{REFUSED[0]}:{REFUSED[1]}"  # Stripe is unreachable

    assert send(paid) == HTTPStatus.OK

    [receipt] = mails_to(prepaid_developer)
    assert line(receipt.body, "Paid with") == "Card payment"
    assert line(receipt.body, "New balance") == "$20.00"


def test_an_offline_test_payment_receipt_says_test_card(prepaid_account, prepaid_developer):
    top_up = TopUp.objects.create(
        billing_account=prepaid_account,
        currency="USD",
        amount=usd("20").nanos,
        stripe_checkout_session_id="cs_offline_receipt",
    )
    payload, signature = offline_checkout_event(top_up=top_up, paid=True)

    assert webhook_receive(payload=payload, signature=signature)[0] == HTTPStatus.OK

    [receipt] = mails_to(prepaid_developer)
    assert line(receipt.body, "Paid with") == "Test card"


# --- auto-recharge (offline test cards) ------------------------------------------------------------


@pytest.fixture
def recharging(prepaid_account: BillingAccount) -> BillingAccount:
    """$100 and auto-recharge on: $50 with the saved test Visa 4242 below $20."""
    card_save(
        account=prepaid_account,
        payment_method_id="pm_offline_visa_4242",
        brand="visa",
        last4="4242",
    )
    prepaid_account.refresh_from_db()
    wallet_credit(
        account=prepaid_account, money=usd("100"), transaction_id="opening", actor=Actor.system()
    )
    auto_recharge_configure(
        account=prepaid_account,
        currency="USD",
        enabled=True,
        threshold=usd("20"),
        mode="FIXED",
        amount=usd("50"),
        monthly_cap=None,
        changed_by=prepaid_account.user,
    )
    return prepaid_account


def debit(account: BillingAccount, amount: str, transaction_id: str) -> None:
    wallet_debit(
        account=account, money=usd(amount), transaction_id=transaction_id, actor=Actor.system()
    )


def test_an_auto_recharge_sends_one_receipt(recharging, prepaid_developer):
    debit(recharging, "85", "usage-1")  # $15 left: recharged with $50

    [receipt] = mails_to(prepaid_developer)
    assert receipt.subject == "[Developer portal] Receipt: $50.00 added to your USD balance"
    assert "Auto-recharge added $50.00 to your USD balance." in receipt.body
    assert line(receipt.body, "Paid with") == "Visa •••• 4242"
    assert line(receipt.body, "New balance") == "$65.00"
    top_up = TopUp.objects.get(source=TopUp.Source.AUTO_RECHARGE)
    assert line(receipt.body, "Reference") == str(top_up.public_id)


def test_an_auto_recharge_receipt_names_the_card_charged_though_it_was_replaced_since(
    recharging, prepaid_developer, mail_server_down
):
    """The mail server was down when the recharge was credited; by the time the receipt goes
    out the developer has saved another card, and spent some more."""
    debit(recharging, "85", "usage-1")
    assert mails_to(prepaid_developer) == []
    card_save(
        account=recharging,
        payment_method_id="pm_offline_mastercard_4444",
        brand="mastercard",
        last4="4444",
    )
    debit(recharging, "3", "usage-2")
    mail_server_down.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # back

    assert sweep_later() == 1

    [receipt] = mails_to(prepaid_developer)
    assert line(receipt.body, "Paid with") == "Visa •••• 4242"
    assert line(receipt.body, "New balance") == "$65.00"  # right after the credit, not now


# --- refunds and disputes -------------------------------------------------------------------------


def test_a_refund_sends_one_receipt_with_the_balance_after(
    fake_stripe, top_up, paid, prepaid_developer
):
    assert send(paid) == HTTPStatus.OK
    refunded = fake_stripe.charge_refunded_event(payment_intent(paid), amount=500)

    assert [send(refunded) for _ in range(10)] == [HTTPStatus.OK] * 10

    [_, receipt] = mails_to(prepaid_developer)
    assert receipt.subject == "[Developer portal] $5.00 was taken back from your USD balance"
    assert line(receipt.body, "Why") == "Refund of $5.00 by Stripe"
    assert line(receipt.body, "Amount") == "$5.00 taken back"
    assert line(receipt.body, "Balance after") == "$15.00"
    assert BALANCE_PAGE in receipt.body


def test_a_failed_refund_sends_one_receipt_for_the_money_given_back(
    fake_stripe, top_up, paid, prepaid_developer
):
    pi = payment_intent(paid)
    assert send(paid) == HTTPStatus.OK
    assert send(fake_stripe.charge_refunded_event(pi, amount=500)) == HTTPStatus.OK
    failed = fake_stripe.refund_failed_events(fake_stripe.latest_refund(pi)["id"])

    assert [send(event) for event in failed * 2] == [HTTPStatus.OK] * 6

    [_, _, receipt] = mails_to(prepaid_developer)
    assert receipt.subject == "[Developer portal] $5.00 was given back to your USD balance"
    assert line(receipt.body, "Why") == "Refund of $5.00 failed at Stripe: given back"
    assert line(receipt.body, "Balance after") == "$20.00"


def test_a_dispute_sends_one_receipt_and_winning_it_another(
    fake_stripe, top_up, paid, prepaid_developer
):
    pi = payment_intent(paid)
    assert send(paid) == HTTPStatus.OK
    opened = fake_stripe.dispute_created_event(pi, amount=1500)
    assert [send(opened) for _ in range(5)] == [HTTPStatus.OK] * 5

    [_, taken] = mails_to(prepaid_developer)
    assert taken.subject == "[Developer portal] $15.00 was taken back from your USD balance"
    assert line(taken.body, "Why") == "Card payment disputed ($15.00)"
    assert line(taken.body, "Balance after") == "$5.00"

    won = fake_stripe.dispute_closed_event(pi, status="won")
    assert [send(won) for _ in range(5)] == [HTTPStatus.OK] * 5

    [_, _, given] = mails_to(prepaid_developer)
    assert given.subject == "[Developer portal] $15.00 was given back to your USD balance"
    assert line(given.body, "Why") == "Dispute won: $15.00 restored"
    assert line(given.body, "Balance after") == "$20.00"


def test_a_dispute_first_reported_lost_says_it_was_lost(
    fake_stripe, top_up, paid, prepaid_developer
):
    pi = payment_intent(paid)
    assert send(paid) == HTTPStatus.OK
    fake_stripe.dispute_created_event(pi)  # Stripe's first events never arrived
    lost = fake_stripe.dispute_closed_event(pi, status="lost")

    assert send(lost) == HTTPStatus.OK

    [_, receipt] = mails_to(prepaid_developer)
    assert line(receipt.body, "Why") == "Dispute lost ($20.00)"
    assert line(receipt.body, "Balance after") == "$0.00"


# --- the mail server and the broker down ----------------------------------------------------------


def test_a_receipt_the_mail_server_refused_is_sent_once_by_the_retry(
    top_up, paid, prepaid_developer, monkeypatch
):
    refused: list[str] = []
    send_mail = receipts.send_mail

    def refuse_once(*args: Any, **kwargs: Any) -> int:
        if not refused:
            refused.append(args[0])
            raise ConnectionRefusedError("the mail server is restarting")
        return send_mail(*args, **kwargs)

    monkeypatch.setattr(receipts, "send_mail", refuse_once)

    assert send(paid) == HTTPStatus.OK  # the payment is credited all the same

    assert len(refused) == 1 and mail.outbox == []
    owed = SentNotification.objects.get()
    assert (owed.claimed_at, owed.sent_at) == (None, None)  # the claim was given back

    # Celery's retry (a worker runs it two seconds later), and a duplicate of it.
    assert top_up_receipt_send.apply(args=[top_up.pk], retries=1).get() is True
    assert top_up_receipt_send.apply(args=[top_up.pk], retries=2).get() is False

    [receipt] = mails_to(prepaid_developer)
    assert line(receipt.body, "Paid with") == "Visa •••• 4242"
    assert SentNotification.objects.get().sent_at is not None


def test_a_receipt_refused_at_every_retry_is_sent_once_by_the_sweep(
    top_up, paid, prepaid_developer, mail_server_down
):
    assert send(paid) == HTTPStatus.OK  # the payment is credited all the same

    assert mail.outbox == []
    owed = SentNotification.objects.get()
    assert (owed.claimed_at, owed.sent_at) == (None, None)  # the claim was given back

    mail_server_down.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # back
    assert receipts_sweep() == 0  # not yet: its own task might still be at work
    assert sweep_later() == 1
    assert sweep_later() == 0

    assert len(mails_to(prepaid_developer)) == 1


def test_the_sweep_sends_a_receipt_whose_task_was_lost_and_not_one_already_sent(
    fake_stripe, top_up, paid, prepaid_developer, settings, request
):
    assert send(paid) == HTTPStatus.OK
    [top_up_receipt] = mails_to(prepaid_developer)
    refunded = fake_stripe.charge_refunded_event(payment_intent(paid), amount=500)

    request.getfixturevalue("broker_down")
    assert send(refunded) == HTTPStatus.OK  # robust: the refund is not undone by the broker
    assert mails_to(prepaid_developer) == [top_up_receipt]
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the broker is back (in-process)
    forget_broker_connections()

    assert receipts_sweep() == 0
    assert sweep_later() == 1
    assert sweep_later() == 0

    [_, refund_receipt] = mails_to(prepaid_developer)
    assert line(refund_receipt.body, "Why") == "Refund of $5.00 by Stripe"
    assert line(refund_receipt.body, "Balance after") == "$15.00"


def test_the_sweep_takes_over_a_receipt_whose_sender_died(top_up, paid, prepaid_developer):
    """A worker claimed the receipt and was killed before sending it: nobody else may send it
    while it might still be at work, and somebody must once it cannot be."""
    assert send(paid) == HTTPStatus.OK
    mail.outbox.clear()
    SentNotification.objects.update(sent_at=None, claimed_at=F("created_at"))

    assert sweep_later() == 0  # claimed moments ago: its sender may still be at work

    SentNotification.objects.update(claimed_at=F("claimed_at") - timedelta(minutes=15))
    assert sweep_later() == 1
    assert len(mails_to(prepaid_developer)) == 1
