"""Receipts under concurrency, against real PostgreSQL: ten deliveries of one event at the same
instant, and ten senders of one receipt at the same instant, email the developer once.

Deliveries go to the live server from their own threads (each request in its own server thread
with its own database connection); senders run in threads with their own connections too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
from django.core import mail
from django.db import connection

from billing.models import SentNotification, TopUp
from billing.tasks import top_up_receipt_send
from tests.fakes.stripe_server import FakeStripe, signed_event
from tests.fixtures.stripe import WEBHOOK_SECRET, add_credit, latest_top_up
from tests.webhooks.test_webhook_concurrency import THREADS, deliver_at_once, post, webhook_url

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def paid_top_up(postgres, fake_stripe: FakeStripe, prepaid_client) -> tuple[TopUp, dict]:
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    return top_up, fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id)


def mails_to(user: Any) -> list[mail.EmailMessage]:
    return [message for message in mail.outbox if message.to == [user.email]]


def all_at_once(work: Callable[[], object], count: int = THREADS) -> list[object]:
    """Run `work` in `count` threads released together, each with its own connection."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = work()
        except BaseException as exc:  # reported below, not lost in the thread
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def test_ten_concurrent_deliveries_of_one_payment_send_one_receipt(
    paid_top_up, live_server, prepaid_developer
):
    top_up, completed = paid_top_up

    answers = deliver_at_once(
        webhook_url(live_server), [signed_event(completed, WEBHOOK_SECRET)] * THREADS
    )

    assert answers == [HTTPStatus.OK] * THREADS
    [receipt] = mails_to(prepaid_developer)
    assert receipt.subject == "[Developer portal] Receipt: $20.00 added to your USD balance"
    assert "Visa •••• 4242" in receipt.body and "New balance:  $20.00" in receipt.body
    notification = SentNotification.objects.get()
    assert notification.key == f"receipt:top-up:{top_up.public_id}" and notification.sent_at


def test_ten_concurrent_deliveries_of_one_refund_send_one_receipt(
    paid_top_up, fake_stripe, live_server, prepaid_developer
):
    _, completed = paid_top_up
    url = webhook_url(live_server)
    assert post(url, *signed_event(completed, WEBHOOK_SECRET)) == HTTPStatus.OK
    refunded = fake_stripe.charge_refunded_event(completed["data"]["object"]["payment_intent"])

    answers = deliver_at_once(url, [signed_event(refunded, WEBHOOK_SECRET)] * THREADS)

    assert answers == [HTTPStatus.OK] * THREADS
    [_, receipt] = mails_to(prepaid_developer)
    assert receipt.subject == "[Developer portal] $20.00 was taken back from your USD balance"
    assert "Balance after:  $0.00" in receipt.body


def test_ten_senders_of_one_receipt_at_once_send_it_once(
    paid_top_up, live_server, prepaid_developer, settings
):
    """Its task's retry, the task redelivered and the sweep may all send the same receipt at
    the same moment: the claim lets exactly one through."""
    top_up, completed = paid_top_up
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # refused: the receipt waits
    assert post(webhook_url(live_server), *signed_event(completed, WEBHOOK_SECRET)) == 200
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # back
    assert SentNotification.objects.get().sent_at is None

    sent = all_at_once(lambda: top_up_receipt_send.apply(args=[top_up.pk]).get())

    assert sorted(sent, key=bool) == [False] * (THREADS - 1) + [True]
    [receipt] = mails_to(prepaid_developer)
    assert "Visa •••• 4242" in receipt.body
