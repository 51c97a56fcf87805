"""Concurrent webhook deliveries against real PostgreSQL: one payment is credited exactly once.

Ten threads POST signed events to the live server at the same instant (a Barrier releases them);
each request runs in its own server thread with its own database connection.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http import HTTPStatus
from typing import Any

import pytest
from django.core import mail
from django.db import connection, connections

from billing.ledger.selectors import ledger_mismatches
from billing.models import LedgerEntry, StripeEvent, TopUp, Wallet
from tests.conftest import NANOS_PER_UNIT
from tests.fakes.stripe_server import FakeStripe, signed_event
from tests.fixtures.stripe import WEBHOOK_SECRET, add_credit, latest_top_up

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

THREADS = 10
# No proxy handler entries: these requests stay on 127.0.0.1 whatever the environment says.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def webhook_url(live_server: Any) -> str:
    # The live server listens on 127.0.0.1; "localhost" might resolve elsewhere first.
    return live_server.url.replace("://localhost:", "://127.0.0.1:") + "/stripe/webhook/"


def post(url: str, payload: bytes, signature: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - a 127.0.0.1 URL built above
        url,
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
        method="POST",
    )
    try:
        with OPENER.open(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def deliver_at_once(url: str, deliveries: list[tuple[bytes, str]]) -> list[int]:
    """POST every (payload, signature) from its own thread, all released together."""
    barrier = threading.Barrier(len(deliveries))
    answers: list[int | BaseException] = [0] * len(deliveries)

    def run(index: int, payload: bytes, signature: str) -> None:
        try:
            barrier.wait(timeout=10)
            answers[index] = post(url, payload, signature)
        except BaseException as exc:  # reported below, not lost in the thread
            answers[index] = exc

    threads = [
        threading.Thread(target=run, args=(i, payload, signature))
        for i, (payload, signature) in enumerate(deliveries)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return answers  # type: ignore[return-value]


@pytest.fixture
def paid_top_up(postgres, fake_stripe: FakeStripe, prepaid_client) -> tuple[TopUp, dict]:
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    return top_up, fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id)


def assert_credited_once(top_up: TopUp, payment_intent_id: str) -> None:
    assert Wallet.objects.get(currency="USD").balance == 20 * NANOS_PER_UNIT
    assert list(LedgerEntry.objects.values_list("kind", "amount", "transaction_id")) == [
        ("TOP_UP", 20 * NANOS_PER_UNIT, payment_intent_id)
    ]
    top_up.refresh_from_db()
    assert (top_up.state, top_up.ledger_transaction_id) == ("SUCCEEDED", payment_intent_id)
    assert ledger_mismatches() == []


def test_ten_concurrent_deliveries_of_one_event_credit_once(paid_top_up, live_server):
    top_up, completed = paid_top_up
    signed = signed_event(completed, WEBHOOK_SECRET)

    answers = deliver_at_once(webhook_url(live_server), [signed] * THREADS)

    assert all(HTTPStatus.OK <= answer < HTTPStatus.MULTIPLE_CHOICES for answer in answers), answers
    assert_credited_once(top_up, completed["data"]["object"]["payment_intent"])
    assert list(StripeEvent.objects.values_list("id", "status")) == [(completed["id"], "PROCESSED")]


def test_ten_concurrent_different_events_for_one_payment_credit_once(
    paid_top_up, fake_stripe, live_server
):
    top_up, completed = paid_top_up
    session = completed["data"]["object"]
    pi = session["payment_intent"]
    events = [completed]
    events += [fake_stripe.event_for("checkout.session.completed", session) for _ in range(4)]
    events += [fake_stripe.payment_intent_succeeded_event(pi) for _ in range(5)]
    assert len({event["id"] for event in events}) == THREADS

    answers = deliver_at_once(
        webhook_url(live_server), [signed_event(event, WEBHOOK_SECRET) for event in events]
    )

    assert all(HTTPStatus.OK <= answer < HTTPStatus.MULTIPLE_CHOICES for answer in answers), answers
    assert_credited_once(top_up, pi)
    assert StripeEvent.objects.filter(status="PROCESSED").count() == THREADS


def test_concurrent_refund_events_debit_the_refunded_total_once(
    paid_top_up, fake_stripe, live_server
):
    top_up, completed = paid_top_up
    pi = completed["data"]["object"]["payment_intent"]
    url = webhook_url(live_server)
    assert post(url, *signed_event(completed, WEBHOOK_SECRET)) == HTTPStatus.OK
    first = signed_event(fake_stripe.charge_refunded_event(pi, amount=500), WEBHOOK_SECRET)
    second = signed_event(fake_stripe.charge_refunded_event(pi, amount=700), WEBHOOK_SECRET)

    answers = deliver_at_once(url, [first, second] * (THREADS // 2))

    assert answers == [HTTPStatus.OK] * THREADS
    refunds = LedgerEntry.objects.filter(kind="REFUND").values_list("amount", flat=True)
    assert sum(refunds) == -12 * NANOS_PER_UNIT
    assert Wallet.objects.get(currency="USD").balance == 8 * NANOS_PER_UNIT
    top_up.refresh_from_db()
    assert top_up.refunded_amount == 12 * NANOS_PER_UNIT
    assert ledger_mismatches() == []


def deliver_until_accepted(url: str, deliveries: list[tuple[bytes, str]]) -> list[int]:
    """All at once, then again (as Stripe retries) each one answered with a 5xx; the first
    round's answers."""
    first = deliver_at_once(url, deliveries)
    retry = [delivery for delivery, answer in zip(deliveries, first, strict=True) if answer >= 500]
    for _ in range(5):
        retry = [delivery for delivery in retry if post(url, *delivery) >= 500]
    assert retry == []
    return first


def test_a_payment_its_refund_and_its_dispute_reported_at_once_end_the_same(
    paid_top_up, fake_stripe, live_server
):
    """Checkout completed, payment_intent.succeeded, a partial refund, a dispute and the
    dispute won, all at the same moment: whatever order they are processed in (an event that
    comes before the payment's is answered 5xx and sent again), the wallet ends credited once,
    refunded once and with the won dispute given back."""
    top_up, completed = paid_top_up
    pi = completed["data"]["object"]["payment_intent"]
    events = [
        completed,
        fake_stripe.payment_intent_succeeded_event(pi),
        fake_stripe.charge_refunded_event(pi, amount=500),
        fake_stripe.dispute_created_event(pi, amount=1500),
        fake_stripe.dispute_closed_event(pi, status="won"),
    ]

    deliver_until_accepted(
        webhook_url(live_server), [signed_event(event, WEBHOOK_SECRET) for event in events] * 2
    )

    entries = LedgerEntry.objects.order_by("kind", "amount").values_list("kind", "amount")
    assert list(entries) == [
        ("DISPUTE", -15 * NANOS_PER_UNIT),
        ("DISPUTE", 15 * NANOS_PER_UNIT),
        ("REFUND", -5 * NANOS_PER_UNIT),
        ("TOP_UP", 20 * NANOS_PER_UNIT),
    ]
    assert Wallet.objects.get(currency="USD").balance == 15 * NANOS_PER_UNIT
    top_up.refresh_from_db()
    assert (top_up.state, top_up.refunded_amount) == ("SUCCEEDED", 5 * NANOS_PER_UNIT)
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {"PROCESSED"}
    assert ledger_mismatches() == []


def test_two_deliveries_failing_at_once_email_the_admins_exactly_once(
    postgres, settings, deliver_failing
):
    """Both failures count the attempt; the one that counts the first tells the admins. The count
    was read in a second query, so two failures meeting on the row could both read 2."""

    settings.ADMINS = [("Ops", "ops@example.com")]
    StripeEvent.objects.create(id="evt_failing", type="payment_intent.succeeded", payload={})
    held, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute(
                    "SELECT 1 FROM billing_stripeevent WHERE id = 'evt_failing' FOR UPDATE"
                )
                held.set()
                release.wait(10)
                cursor.execute("COMMIT")
        finally:
            other.close()

    def fail() -> None:
        try:
            deliver_failing("evt_failing")
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    assert held.wait(10)
    failing = [threading.Thread(target=fail) for _ in range(2)]
    for thread in failing:
        thread.start()
    threading.Event().wait(0.5)  # both are now waiting for the row
    release.set()
    for thread in [holder, *failing]:
        thread.join(20)

    assert StripeEvent.objects.get(id="evt_failing").attempts == 2
    assert len(mail.outbox) == 1
