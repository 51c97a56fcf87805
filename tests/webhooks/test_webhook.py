"""The Stripe webhook: verify, store, process, answer; credit exactly once whatever the order.

Events come from the fake Stripe (the objects Stripe would send) and are signed with Stripe's
real scheme; the webhook verifies them with the real stripe library.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.billing_accounts.selectors import organization_settings_get
from billing.models import LedgerEntry, OrganizationSettings, StripeEvent, TopUp, Wallet
from billing.top_ups.confirmations import top_up_flag_uncredited
from tests.conftest import NANOS_PER_UNIT, usd
from tests.fakes.stripe_server import FakeStripe, signed_event
from tests.fixtures.stripe import WEBHOOK_SECRET, add_credit, latest_top_up, post_raw, sign

pytestmark = pytest.mark.django_db

ADMIN_EMAIL = "payments-admin@example.com"


@pytest.fixture
def stripe_sender() -> Client:
    """Stripe is anonymous and sends no CSRF token."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def top_up(fake_stripe: FakeStripe, prepaid_client: Client) -> TopUp:
    """A $20 top-up with an open Checkout Session in the fake Stripe."""
    OrganizationSettings.objects.filter(pk=organization_settings_get().pk).update(
        notification_email=ADMIN_EMAIL
    )
    add_credit(prepaid_client, "20")
    return latest_top_up()


@pytest.fixture
def checkout_completed(fake_stripe: FakeStripe, top_up: TopUp) -> dict[str, Any]:
    """The customer paid: the checkout.session.completed event Stripe sends."""
    return fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id)


@pytest.fixture
def send(stripe_sender: Client):
    def deliver(event: dict[str, Any], secret: str = WEBHOOK_SECRET) -> int:
        payload, header = signed_event(event, secret)
        return post_raw(stripe_sender, payload, header).status_code

    return deliver


def payment_intent_of(event: dict[str, Any]) -> str:
    return event["data"]["object"]["payment_intent"]


def balance() -> int | None:
    wallet = Wallet.objects.filter(currency="USD").first()
    return None if wallet is None else wallet.balance


def ledger() -> list[tuple[str, int, str]]:
    return list(LedgerEntry.objects.order_by("id").values_list("kind", "amount", "transaction_id"))


def state(top_up: TopUp) -> str:
    top_up.refresh_from_db()
    return top_up.state


def events() -> dict[str, str]:
    return dict(StripeEvent.objects.values_list("id", "status"))


def succeeded_intent_event(fake: FakeStripe, payment_intent_id: str) -> dict[str, Any]:
    """payment_intent.succeeded as Stripe sends it once a delayed payment has gone through."""
    intent = fake.get_object(payment_intent_id)
    intent.update(status="succeeded", amount_received=intent["amount"])
    return fake.event_for("payment_intent.succeeded", intent)


def assert_credited_once(top_up: TopUp, payment_intent_id: str) -> None:
    assert balance() == 20 * NANOS_PER_UNIT
    assert ledger() == [("TOP_UP", 20 * NANOS_PER_UNIT, payment_intent_id)]
    top_up.refresh_from_db()
    assert top_up.state == "SUCCEEDED"
    assert top_up.stripe_payment_intent_id == payment_intent_id
    assert top_up.ledger_transaction_id == payment_intent_id


# --- one payment, credited once ---------------------------------------------------------------


def test_a_paid_checkout_credits_the_wallet_once(top_up, checkout_completed, send, prepaid_client):
    assert send(checkout_completed) == HTTPStatus.OK

    pi = payment_intent_of(checkout_completed)
    assert_credited_once(top_up, pi)
    assert events() == {checkout_completed["id"]: "PROCESSED"}
    entry = LedgerEntry.objects.get()
    assert (entry.actor_type, entry.balance_after, entry.memo) == (
        "STRIPE",
        20 * NANOS_PER_UNIT,
        "Card payment",
    )
    assert Wallet.objects.get().last_credit_at is not None
    page = prepaid_client.get(reverse("top_up_status", args=[top_up.public_id])).content.decode()
    assert "<strong>Done:</strong> $20.00 was added to your balance." in page
    assert '<strong data-testid="new-balance">$20.00</strong>' in page
    assert "hx-get" not in page  # final: the page stops polling


def test_the_same_event_delivered_ten_times_credits_once(top_up, checkout_completed, send):
    answers = [send(checkout_completed) for _ in range(10)]

    assert answers == [HTTPStatus.OK] * 10
    assert_credited_once(top_up, payment_intent_of(checkout_completed))
    assert events() == {checkout_completed["id"]: "PROCESSED"}


def test_payment_intent_succeeded_after_the_checkout_event_does_not_credit_again(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    intent_succeeded = fake_stripe.payment_intent_succeeded_event(pi)

    assert send(checkout_completed) == HTTPStatus.OK
    assert send(intent_succeeded) == HTTPStatus.OK
    assert send(intent_succeeded) == HTTPStatus.OK

    assert_credited_once(top_up, pi)
    assert set(events().values()) == {"PROCESSED"}
    assert len(events()) == 2


def test_events_in_reverse_order_credit_once(fake_stripe, top_up, checkout_completed, send):
    pi = payment_intent_of(checkout_completed)
    intent_succeeded = fake_stripe.payment_intent_succeeded_event(pi)

    assert send(intent_succeeded) == HTTPStatus.OK
    assert_credited_once(top_up, pi)
    assert send(checkout_completed) == HTTPStatus.OK

    assert_credited_once(top_up, pi)
    assert set(events().values()) == {"PROCESSED"}


def test_an_unpaid_checkout_credits_only_once_the_payment_succeeds(
    fake_stripe, top_up, send, prepaid_client
):
    unpaid = fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id, paid=False)
    assert unpaid["data"]["object"]["payment_status"] == "unpaid"
    pi = payment_intent_of(unpaid)

    assert send(unpaid) == HTTPStatus.OK

    assert balance() is None and ledger() == []
    assert state(top_up) == "PENDING"
    assert top_up.stripe_payment_intent_id == pi
    page = prepaid_client.get(reverse("top_up_status", args=[top_up.public_id])).content.decode()
    assert "<strong>Pending:</strong>" in page

    assert send(succeeded_intent_event(fake_stripe, pi)) == HTTPStatus.OK

    assert_credited_once(top_up, pi)


def test_async_payment_succeeded_credits_a_delayed_payment_once(fake_stripe, top_up, send):
    unpaid = fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id, paid=False)
    session = unpaid["data"]["object"]
    session["payment_status"] = "paid"
    async_paid = fake_stripe.event_for("checkout.session.async_payment_succeeded", session)
    pi = payment_intent_of(unpaid)

    for event in (unpaid, async_paid, async_paid, succeeded_intent_event(fake_stripe, pi)):
        assert send(event) == HTTPStatus.OK

    assert_credited_once(top_up, pi)


def test_async_payment_failed_marks_the_top_up_failed(fake_stripe, top_up, send):
    unpaid = fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id, paid=False)
    failed = fake_stripe.event_for(
        "checkout.session.async_payment_failed", unpaid["data"]["object"]
    )

    assert send(unpaid) == HTTPStatus.OK
    assert send(failed) == HTTPStatus.OK

    assert state(top_up) == "FAILED"
    assert top_up.failure_reason == "The payment failed after checkout."
    assert balance() is None


# --- nothing is trusted that is not verified --------------------------------------------------


def unsigned(payload: bytes) -> None:
    return None


def forged(payload: bytes) -> str:
    return sign(payload, "whsec_someone_else")


def stale(payload: bytes) -> str:
    return sign(payload, timestamp=int(time.time()) - 301)


def garbage(payload: bytes) -> str:
    return "definitely not a signature"


def for_another_body(payload: bytes) -> str:
    return sign(payload + b" ")


@pytest.mark.parametrize("signature", [unsigned, forged, stale, garbage, for_another_body])
def test_a_badly_signed_event_is_refused_and_stores_nothing(
    top_up, checkout_completed, stripe_sender, signature
):
    payload = json.dumps(checkout_completed).encode()

    response = post_raw(stripe_sender, payload, signature(payload))

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"message": "Invalid or missing Stripe-Signature."}
    assert not StripeEvent.objects.exists()
    assert balance() is None and ledger() == []
    assert state(top_up) == "PENDING"


def test_a_tampered_body_is_refused(top_up, checkout_completed, stripe_sender):
    payload, header = signed_event(checkout_completed, WEBHOOK_SECRET)
    tampered = payload.replace(b'"amount_total": 2000', b'"amount_total": 200000')
    assert tampered != payload

    response = post_raw(stripe_sender, tampered, header)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not StripeEvent.objects.exists()
    assert balance() is None


def test_a_signature_290_seconds_old_is_still_accepted(top_up, checkout_completed, stripe_sender):
    payload = json.dumps(checkout_completed).encode()

    response = post_raw(stripe_sender, payload, sign(payload, timestamp=int(time.time()) - 290))

    assert response.status_code == HTTPStatus.OK
    assert balance() == 20 * NANOS_PER_UNIT


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"id": "evt_1"}', b'{"id": 5, "type": "x", "data": {"object": {}}}'],
)
def test_a_signed_body_that_is_not_an_event_is_refused(top_up, stripe_sender, body):
    response = post_raw(stripe_sender, body, sign(body))

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not StripeEvent.objects.exists()


def test_the_webhook_only_takes_post(stripe_sender):
    assert stripe_sender.get(reverse("stripe_webhook")).status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_an_unknown_event_type_is_stored_as_ignored(fake_stripe, top_up, send):
    event = fake_stripe.event_for("customer.created", {"id": "cus_1", "object": "customer"})

    assert send(event) == HTTPStatus.OK
    assert send(event) == HTTPStatus.OK

    assert events() == {event["id"]: "IGNORED"}
    assert StripeEvent.objects.get().type == "customer.created"
    assert balance() is None and state(top_up) == "PENDING"


def test_a_payment_that_is_not_a_top_up_is_left_alone(fake_stripe, top_up, send):
    # Another product on the same Stripe account: no top_up_id, a PaymentIntent we never saw.
    event = fake_stripe.event_for(
        "payment_intent.succeeded",
        {
            "id": "pi_someone_else",
            "object": "payment_intent",
            "amount": 2000,
            "amount_received": 2000,
            "currency": "usd",
            "status": "succeeded",
            "metadata": {},
        },
    )

    assert send(event) == HTTPStatus.OK

    assert events() == {event["id"]: "PROCESSED"}
    assert balance() is None and state(top_up) == "PENDING"


# --- Stripe reporting another amount --------------------------------------------------------


@pytest.mark.parametrize(
    ("amount_total", "currency", "reported"), [(1000, "usd", "$10.00"), (2000, "eur", "€20.00")]
)
def test_an_amount_mismatch_is_flagged_for_an_admin_not_credited(
    top_up,
    checkout_completed,
    send,
    django_capture_on_commit_callbacks,
    amount_total,
    currency,
    reported,
):
    checkout_completed["data"]["object"].update(amount_total=amount_total, currency=currency)

    with django_capture_on_commit_callbacks(execute=True):
        assert send(checkout_completed) == HTTPStatus.OK
    with django_capture_on_commit_callbacks(execute=True):
        assert send(checkout_completed) == HTTPStatus.OK

    assert balance() is None and ledger() == []
    top_up.refresh_from_db()
    assert top_up.state == "PENDING"
    assert top_up.flagged
    expected = f"Stripe reported {reported} for a top-up of $20.00; not credited."
    assert top_up.flag_reason == expected
    [email] = mail.outbox
    assert email.to == [ADMIN_EMAIL]
    assert str(top_up.public_id) in email.subject
    assert expected in email.body


# --- failed payments --------------------------------------------------------------------------


def declined_intent_event(fake: FakeStripe, payment_intent_id: str) -> dict[str, Any]:
    intent = fake.get_object(payment_intent_id)
    intent.update(
        status="requires_payment_method",
        last_payment_error={
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        },
    )
    return fake.event_for("payment_intent.payment_failed", intent)


def test_a_failed_payment_marks_the_top_up_failed_with_the_reason(
    fake_stripe, top_up, send, prepaid_client
):
    # A delayed payment: the page was completed, and the debit fails later.
    unpaid = fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id, paid=False)
    pi = payment_intent_of(unpaid)
    assert send(unpaid) == HTTPStatus.OK

    assert send(declined_intent_event(fake_stripe, pi)) == HTTPStatus.OK

    assert state(top_up) == "FAILED"
    assert top_up.failure_reason == "Your card has insufficient funds."
    assert top_up.stripe_payment_intent_id == pi
    assert balance() is None
    page = prepaid_client.get(reverse("top_up_status", args=[top_up.public_id])).content.decode()
    assert "<strong>Failed:</strong> Your card has insufficient funds. Nothing was added." in page


def test_a_card_declined_on_stripes_page_leaves_the_top_up_payable_and_counted(
    fake_stripe, top_up, send, prepaid_client
):
    """Stripe Checkout lets the developer try another card after a decline, on the same page:
    the top-up must not fail (and stop counting against the wait and the monthly cap) while
    its page can still be paid."""
    declined = fake_stripe.decline_checkout_attempt(top_up.stripe_checkout_session_id)

    assert send(declined) == HTTPStatus.OK

    assert state(top_up) == "PENDING" and balance() is None
    refused = add_credit(prepaid_client, "20")
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert "Your last payment page is not paid yet" in refused.content.decode()
    assert TopUp.objects.count() == 1
    paid = fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id)
    assert send(paid) == HTTPStatus.OK
    assert_credited_once(top_up, payment_intent_of(paid))


def test_a_card_decline_delivered_after_the_page_was_completed_does_not_fail_the_top_up(
    fake_stripe, top_up, send, prepaid_client
):
    """A card declined, then the page completed with a bank debit; Stripe delivers the decline
    last (events come in any order). The debit is under way: the top-up keeps counting against
    the wait and the month, and is not shown as failed."""
    declined = fake_stripe.decline_checkout_attempt(top_up.stripe_checkout_session_id)
    unpaid = fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id, paid=False)
    assert send(unpaid) == HTTPStatus.OK

    assert send(declined) == HTTPStatus.OK

    assert state(top_up) == "PENDING" and balance() is None
    assert add_credit(prepaid_client, "20").status_code == HTTPStatus.BAD_REQUEST
    page = prepaid_client.get(reverse("top_up_status", args=[top_up.public_id])).content.decode()
    assert "Failed" not in page
    succeeded = succeeded_intent_event(fake_stripe, payment_intent_of(unpaid))
    assert send(succeeded) == HTTPStatus.OK
    assert_credited_once(top_up, payment_intent_of(unpaid))


def test_a_page_left_after_a_declined_card_expires_as_cancelled(fake_stripe, top_up, send):
    send(fake_stripe.decline_checkout_attempt(top_up.stripe_checkout_session_id))

    assert send(fake_stripe.expire_checkout_session(top_up.stripe_checkout_session_id)) == 200

    assert state(top_up) == "CANCELED"
    assert top_up.failure_reason == "The payment page expired before payment."
    assert balance() is None


def test_a_payment_that_succeeds_after_a_failure_still_credits_once(fake_stripe, top_up, send):
    unpaid = fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id, paid=False)
    pi = payment_intent_of(unpaid)
    succeeded = succeeded_intent_event(fake_stripe, pi)

    assert send(declined_intent_event(fake_stripe, pi)) == HTTPStatus.OK
    assert send(succeeded) == HTTPStatus.OK
    assert send(succeeded) == HTTPStatus.OK

    assert_credited_once(top_up, pi)


def test_a_late_failure_does_not_undo_a_success(fake_stripe, top_up, checkout_completed, send):
    pi = payment_intent_of(checkout_completed)
    assert send(checkout_completed) == HTTPStatus.OK

    assert send(declined_intent_event(fake_stripe, pi)) == HTTPStatus.OK

    assert_credited_once(top_up, pi)


# --- refunds ----------------------------------------------------------------------------------


def test_a_full_refund_debits_the_refunded_amount_once(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    refunded = fake_stripe.charge_refunded_event(pi)
    charge_id = refunded["data"]["object"]["id"]

    for _ in range(3):
        assert send(refunded) == HTTPStatus.OK

    assert balance() == 0
    assert ledger() == [
        ("TOP_UP", 20 * NANOS_PER_UNIT, pi),
        ("REFUND", -20 * NANOS_PER_UNIT, f"refund:{charge_id}:2000"),
    ]
    assert state(top_up) == "REFUNDED"
    assert top_up.refunded_amount == 20 * NANOS_PER_UNIT


def test_partial_refunds_debit_exactly_what_is_new(fake_stripe, top_up, checkout_completed, send):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    first = fake_stripe.charge_refunded_event(pi, amount=500)  # cumulative 5.00
    second = fake_stripe.charge_refunded_event(pi, amount=700)  # cumulative 12.00
    assert second["data"]["object"]["amount_refunded"] == 1200

    for event in (first, second, first, second):  # replays, and the older one arriving late
        assert send(event) == HTTPStatus.OK

    assert balance() == 8 * NANOS_PER_UNIT
    assert [amount for kind, amount, _ in ledger() if kind == "REFUND"] == [
        -5 * NANOS_PER_UNIT,
        -7 * NANOS_PER_UNIT,
    ]
    assert state(top_up) == "SUCCEEDED"
    assert top_up.refunded_amount == 12 * NANOS_PER_UNIT

    assert send(fake_stripe.charge_refunded_event(pi)) == HTTPStatus.OK  # the remaining 8.00

    assert balance() == 0
    assert state(top_up) == "REFUNDED"


def test_partial_refunds_arriving_newest_first_debit_the_total_once(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    first = fake_stripe.charge_refunded_event(pi, amount=500)
    second = fake_stripe.charge_refunded_event(pi, amount=700)

    assert send(second) == HTTPStatus.OK
    assert send(first) == HTTPStatus.OK

    assert balance() == 8 * NANOS_PER_UNIT
    assert sum(amount for kind, amount, _ in ledger() if kind == "REFUND") == -12 * NANOS_PER_UNIT


def test_a_refund_before_the_payment_is_known_waits_for_it(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    refunded = fake_stripe.charge_refunded_event(pi)

    assert send(refunded) == HTTPStatus.INTERNAL_SERVER_ERROR  # Stripe will send it again

    assert balance() in (None, 0) and ledger() == []
    assert state(top_up) == "PENDING"
    assert events() == {refunded["id"]: "FAILED"}
    assert mail.outbox == []  # waiting for another event is not a failure to report

    assert send(checkout_completed) == HTTPStatus.OK
    assert send(refunded) == HTTPStatus.OK  # Stripe's retry
    assert send(refunded) == HTTPStatus.OK

    assert balance() == 0
    assert [kind for kind, _, _ in ledger()] == ["TOP_UP", "REFUND"]
    assert state(top_up) == "REFUNDED"
    assert events()[refunded["id"]] == "PROCESSED"


def stripe_delivers(send, *events: dict[str, Any]) -> None:
    """Deliver like Stripe: in the given order, then retry every event not answered 2xx."""
    waiting = list(events)
    for _ in range(5):
        waiting = [event for event in waiting if send(event) >= HTTPStatus.MULTIPLE_CHOICES]
        if not waiting:
            return
    raise AssertionError(f"still refused after retries: {[e['type'] for e in waiting]}")


def test_a_refund_before_the_payment_is_known_ends_with_the_money_right(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    refunded = fake_stripe.charge_refunded_event(pi)

    stripe_delivers(send, refunded, checkout_completed)

    assert balance() == 0
    assert sorted(amount for _, amount, _ in ledger()) == [
        -20 * NANOS_PER_UNIT,
        20 * NANOS_PER_UNIT,
    ]
    assert state(top_up) == "REFUNDED"
    assert top_up.refunded_amount == 20 * NANOS_PER_UNIT


def test_a_refund_for_a_payment_we_never_saw_waits(fake_stripe, top_up, send):
    # The charge names a PaymentIntent but carries none of our metadata.
    event = fake_stripe.event_for(
        "charge.refunded",
        {
            "id": "ch_unknown",
            "object": "charge",
            "amount": 2000,
            "amount_refunded": 2000,
            "currency": "usd",
            "payment_intent": "pi_unknown",
            "metadata": {},
        },
    )

    assert send(event) == HTTPStatus.INTERNAL_SERVER_ERROR

    assert balance() is None and ledger() == []
    assert events() == {event["id"]: "FAILED"}


def _foreign_charge_refunded(fake_stripe: FakeStripe, **charge: Any) -> dict[str, Any]:
    """A refund for a charge of another product on the same Stripe account."""
    return fake_stripe.event_for(
        "charge.refunded",
        {
            "id": "ch_other_product",
            "object": "charge",
            "amount": 2000,
            "amount_refunded": 2000,
            "currency": "usd",
            "payment_intent": "pi_other_product",
            "customer": "cus_other_product",
            "metadata": {},
            **charge,
        },
    )


def _received_hours_ago(event: dict[str, Any], hours: float) -> None:
    StripeEvent.objects.filter(pk=event["id"]).update(
        received_at=timezone.now() - timedelta(hours=hours)
    )


def test_a_refund_for_a_charge_that_is_not_ours_is_set_aside_for_an_admin_after_an_hour(
    fake_stripe, top_up, send
):
    event = _foreign_charge_refunded(fake_stripe)
    assert send(event) == HTTPStatus.INTERNAL_SERVER_ERROR  # it may yet be ours: wait
    _received_hours_ago(event, 0.5)
    assert send(event) == HTTPStatus.INTERNAL_SERVER_ERROR
    assert mail.outbox == []

    _received_hours_ago(event, 1.5)
    assert send(event) == HTTPStatus.OK  # Stripe stops retrying
    assert send(event) == HTTPStatus.OK

    assert events() == {event["id"]: "IGNORED"}
    assert "Set aside" in StripeEvent.objects.get().error
    assert balance() is None and ledger() == []
    [email] = mail.outbox  # once, not at every delivery
    assert email.to == [ADMIN_EMAIL]
    assert "ch_other_product" in email.body and "charge.refunded" in email.subject


def test_a_refund_naming_our_customer_keeps_waiting_for_its_payment(fake_stripe, top_up, send):
    """Ours by its customer: it waits as long as Stripe retries, then debits once."""
    top_up.billing_account.refresh_from_db()
    customer = top_up.billing_account.stripe_customer_id
    assert customer
    event = _foreign_charge_refunded(fake_stripe, customer=customer)
    send(event)
    _received_hours_ago(event, 30)
    assert send(event) == HTTPStatus.INTERNAL_SERVER_ERROR
    assert events() == {event["id"]: "FAILED"}
    assert mail.outbox == []


def test_a_dispute_before_its_payment_still_waits_within_the_hour(
    fake_stripe, top_up, checkout_completed, send
):
    opened = fake_stripe.dispute_created_event(payment_intent_of(checkout_completed))
    assert send(opened) == HTTPStatus.INTERNAL_SERVER_ERROR
    _received_hours_ago(opened, 0.9)
    assert send(opened) == HTTPStatus.INTERNAL_SERVER_ERROR
    assert send(checkout_completed) == HTTPStatus.OK
    assert send(opened) == HTTPStatus.OK
    assert sorted(kind for kind, _, _ in ledger()) == ["DISPUTE", "TOP_UP"]


def test_an_expired_payment_page_closes_the_pending_top_up(fake_stripe, top_up, send):
    expired = fake_stripe.expire_checkout_session(top_up.stripe_checkout_session_id)

    assert send(expired) == HTTPStatus.OK
    assert send(expired) == HTTPStatus.OK

    assert state(top_up) == "CANCELED"
    assert "expired" in top_up.failure_reason
    assert balance() is None and ledger() == []


def test_an_expired_session_does_not_undo_a_paid_top_up(
    fake_stripe, top_up, checkout_completed, send
):
    send(checkout_completed)
    session = checkout_completed["data"]["object"]
    late = fake_stripe.event_for("checkout.session.expired", {**session, "status": "expired"})

    assert send(late) == HTTPStatus.OK

    assert state(top_up) == "SUCCEEDED"
    assert balance() == 20 * NANOS_PER_UNIT


# --- disputes ---------------------------------------------------------------------------------


def test_a_dispute_takes_the_money_back_and_a_won_dispute_restores_it(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    opened = fake_stripe.dispute_created_event(pi)
    dispute_id = opened["data"]["object"]["id"]

    assert send(opened) == HTTPStatus.OK
    assert send(opened) == HTTPStatus.OK

    assert balance() == 0
    assert ledger()[1:] == [("DISPUTE", -20 * NANOS_PER_UNIT, f"dispute:{dispute_id}")]
    assert state(top_up) == "DISPUTED"

    won = fake_stripe.dispute_closed_event(pi, status="won")
    assert send(won) == HTTPStatus.OK
    assert send(won) == HTTPStatus.OK

    assert balance() == 20 * NANOS_PER_UNIT
    assert ledger()[2:] == [("DISPUTE", 20 * NANOS_PER_UNIT, f"dispute-won:{dispute_id}")]
    assert state(top_up) == "SUCCEEDED"


def test_a_lost_dispute_takes_nothing_more(fake_stripe, top_up, checkout_completed, send):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    send(fake_stripe.dispute_created_event(pi))

    lost = fake_stripe.dispute_closed_event(pi, status="lost")
    assert send(lost) == HTTPStatus.OK
    assert send(lost) == HTTPStatus.OK

    assert balance() == 0
    assert [kind for kind, _, _ in ledger()] == ["TOP_UP", "DISPUTE"]
    assert state(top_up) == "DISPUTED"


def test_a_dispute_for_part_of_the_payment_debits_that_part(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)

    assert send(fake_stripe.dispute_created_event(pi, amount=750)) == HTTPStatus.OK

    assert balance() == 12_500_000_000


def test_a_dispute_before_the_payment_is_known_ends_with_the_money_right(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    opened = fake_stripe.dispute_created_event(pi)

    stripe_delivers(send, opened, checkout_completed)

    assert balance() == 0
    assert sorted(kind for kind, _, _ in ledger()) == ["DISPUTE", "TOP_UP"]


def test_a_dispute_before_the_payment_is_known_waits_and_ends_disputed(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    opened = fake_stripe.dispute_created_event(pi)

    assert send(opened) == HTTPStatus.INTERNAL_SERVER_ERROR
    assert balance() is None and ledger() == []
    assert state(top_up) == "PENDING"
    assert mail.outbox == []  # waiting for another event is not a failure to report
    stripe_delivers(send, checkout_completed, opened)

    assert balance() == 0
    assert state(top_up) == "DISPUTED"


def test_an_inquiry_takes_no_money(fake_stripe, top_up, checkout_completed, send):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    opened = fake_stripe.dispute_created_event(pi)
    inquiry = opened["data"]["object"]
    inquiry["status"] = "warning_needs_response"
    opened_inquiry = fake_stripe.event_for("charge.dispute.created", inquiry)
    inquiry["status"] = "warning_closed"
    closed_inquiry = fake_stripe.event_for("charge.dispute.closed", inquiry)

    assert send(opened_inquiry) == HTTPStatus.OK
    assert send(closed_inquiry) == HTTPStatus.OK

    assert balance() == 20 * NANOS_PER_UNIT


def dispute_events(fake_stripe, pi: str, *steps: tuple[str, str]) -> list[dict[str, Any]]:
    """The events of one dispute, each carrying the dispute as it was at that step:
    (event type, dispute status)."""
    dispute = fake_stripe.dispute_created_event(pi)["data"]["object"]
    events = []
    for event_type, status in steps:
        dispute["status"] = status
        events.append(fake_stripe.event_for(event_type, dispute))
    return events


def test_an_inquiry_that_becomes_a_lost_chargeback_takes_the_money_once(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    events = dispute_events(
        fake_stripe,
        pi,
        ("charge.dispute.created", "warning_needs_response"),
        ("charge.dispute.funds_withdrawn", "needs_response"),
        ("charge.dispute.updated", "under_review"),
        ("charge.dispute.closed", "lost"),
    )

    assert send(events[0]) == HTTPStatus.OK
    assert balance() == 20 * NANOS_PER_UNIT  # an inquiry: nothing withdrawn yet
    for event in events[1:]:
        assert send(event) == HTTPStatus.OK

    assert balance() == 0
    assert [kind for kind, _, _ in ledger()] == ["TOP_UP", "DISPUTE"]
    assert state(top_up) == "DISPUTED"


WON_AFTER_ESCALATION = [
    ("charge.dispute.created", "warning_needs_response"),
    ("charge.dispute.funds_withdrawn", "needs_response"),
    ("charge.dispute.funds_reinstated", "won"),
    ("charge.dispute.closed", "won"),
]


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (0, 3, 1, 2), (2, 0, 3, 1)])
def test_a_won_dispute_leaves_the_balance_whole_in_any_order(
    fake_stripe, top_up, checkout_completed, send, order
):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    events = dispute_events(fake_stripe, pi, *WON_AFTER_ESCALATION)

    for n in order:
        assert send(events[n]) == HTTPStatus.OK

    assert balance() == 20 * NANOS_PER_UNIT
    assert sorted(amount for kind, amount, _ in ledger() if kind == "DISPUTE") in (
        [],
        [-20 * NANOS_PER_UNIT, 20 * NANOS_PER_UNIT],
    )
    assert state(top_up) == "SUCCEEDED"


# --- refunds that fail later ------------------------------------------------------------------


def refund_then_fail(fake_stripe, pi: str, amount: int | None = None):
    """A refund Stripe reports as made (charge.refunded) and, later, as failed (its 3 events)."""
    refunded = fake_stripe.charge_refunded_event(pi, amount=amount)
    refund_id = fake_stripe.latest_refund(pi)["id"]
    return refunded, refund_id, fake_stripe.refund_failed_events(refund_id)


def test_a_failed_refund_gives_the_money_back_once(fake_stripe, top_up, checkout_completed, send):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    refunded, refund_id, failed = refund_then_fail(fake_stripe, pi)
    assert send(refunded) == HTTPStatus.OK
    assert (balance(), state(top_up)) == (0, "REFUNDED")

    for event in failed:  # charge.refund.updated, refund.updated, refund.failed
        assert send(event) == HTTPStatus.OK

    assert balance() == 20 * NANOS_PER_UNIT
    assert ledger()[1:] == [
        ("REFUND", -20 * NANOS_PER_UNIT, f"refund:{refunded['data']['object']['id']}:2000"),
        ("REFUND", 20 * NANOS_PER_UNIT, f"refund-failed:{refund_id}"),
    ]
    assert state(top_up) == "SUCCEEDED"
    assert (top_up.refunded_amount, top_up.refund_failed_amount) == (
        20 * NANOS_PER_UNIT,
        20 * NANOS_PER_UNIT,
    )
    assert all(status == "PROCESSED" for status in events().values())


def test_the_same_failed_refund_event_ten_times_gives_back_once(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    refunded, _, failed = refund_then_fail(fake_stripe, pi, amount=500)
    send(refunded)

    answers = [send(failed[-1]) for _ in range(10)]

    assert answers == [HTTPStatus.OK] * 10
    assert balance() == 20 * NANOS_PER_UNIT
    assert [amount for kind, amount, _ in ledger() if kind == "REFUND"] == [
        -5 * NANOS_PER_UNIT,
        5 * NANOS_PER_UNIT,
    ]


@pytest.mark.parametrize("first", [0, 1, 2])
def test_a_failure_reported_before_its_refund_ends_with_the_money_right(
    fake_stripe, top_up, checkout_completed, send, first
):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    refunded, _, failed = refund_then_fail(fake_stripe, pi, amount=500)

    assert send(failed[first]) == HTTPStatus.INTERNAL_SERVER_ERROR  # waits for the refund
    assert (
        balance() == 20 * NANOS_PER_UNIT and len(ledger()) == 1
    )  # nothing given that was not taken
    assert mail.outbox == []
    stripe_delivers(send, *failed, refunded)

    assert balance() == 20 * NANOS_PER_UNIT
    assert sorted(amount for kind, amount, _ in ledger() if kind == "REFUND") == [
        -5 * NANOS_PER_UNIT,
        5 * NANOS_PER_UNIT,
    ]
    assert state(top_up) == "SUCCEEDED"


def test_a_partial_refund_that_fails_while_another_succeeds_gives_back_only_its_own(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    first, _, first_failed = refund_then_fail(fake_stripe, pi, amount=500)
    second = fake_stripe.charge_refunded_event(pi, amount=700)

    stripe_delivers(send, first, second, *first_failed, second, first)

    assert balance() == 13 * NANOS_PER_UNIT  # 20 - 5 - 7, and the failed 5 given back
    assert state(top_up) == "SUCCEEDED"
    assert _net_refunded(top_up) == 7 * NANOS_PER_UNIT

    assert send(fake_stripe.charge_refunded_event(pi)) == HTTPStatus.OK  # the remaining 8.00

    assert balance() == 5 * NANOS_PER_UNIT  # the failed refund stays with the developer
    assert state(top_up) == "SUCCEEDED"
    assert _net_refunded(top_up) == 15 * NANOS_PER_UNIT


def _net_refunded(top_up: TopUp) -> int:
    top_up.refresh_from_db()
    return top_up.refunded_amount - top_up.refund_failed_amount


def test_a_lower_refunded_total_after_a_failed_refund_is_flagged_not_guessed(
    fake_stripe, top_up, checkout_completed, send, django_capture_on_commit_callbacks
):
    # If Stripe counted a new 5.00 refund without the failed one, charge.refunded would say
    # 12.00 in all where 12.00 was debited before: it cannot be told from an old event.
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    refunded, _, failed = refund_then_fail(fake_stripe, pi, amount=500)
    stripe_delivers(send, refunded, fake_stripe.charge_refunded_event(pi, amount=700), *failed)
    charge = dict(refunded["data"]["object"], amount_refunded=1200)

    with django_capture_on_commit_callbacks(execute=True):
        assert send(fake_stripe.event_for("charge.refunded", charge)) == HTTPStatus.OK

    assert balance() == 13 * NANOS_PER_UNIT
    top_up.refresh_from_db()
    assert top_up.flagged
    assert top_up.flag_reason.startswith(
        "Stripe reported $12.00 refunded in all after a failed refund; $7.00 is debited now."
    )
    assert len(mail.outbox) == 1


def test_a_won_dispute_on_a_refunded_top_up_leaves_it_refunded(
    fake_stripe, top_up, checkout_completed, send
):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    send(fake_stripe.charge_refunded_event(pi))
    dispute_won = dispute_events(fake_stripe, pi, ("charge.dispute.closed", "won"))

    assert send(dispute_won[0]) == HTTPStatus.OK

    assert balance() == 0
    assert state(top_up) == "REFUNDED"


# --- refunds and disputes in another currency ------------------------------------------------


def in_euros(fake_stripe, event: dict[str, Any]) -> dict[str, Any]:
    """The same Stripe object, as if Stripe had reported it in euros."""
    obj = dict(event["data"]["object"], currency="eur")
    return fake_stripe.event_for(event["type"], obj)


def assert_flagged_once(top_up: TopUp, expected: str) -> None:
    top_up.refresh_from_db()
    assert top_up.flagged
    assert top_up.flag_reason == expected
    [email] = mail.outbox
    assert email.to == [ADMIN_EMAIL]
    assert str(top_up.public_id) in email.subject
    assert expected in email.body


def test_a_refund_in_another_currency_is_flagged_for_an_admin_not_ignored(
    fake_stripe, top_up, checkout_completed, send, django_capture_on_commit_callbacks
):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    refunded = in_euros(fake_stripe, fake_stripe.charge_refunded_event(pi, amount=500))

    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            assert send(refunded) == HTTPStatus.OK

    assert balance() == 20 * NANOS_PER_UNIT
    assert ledger() == [("TOP_UP", 20 * NANOS_PER_UNIT, pi)]
    assert not Wallet.objects.filter(currency="EUR").exists()
    assert state(top_up) == "SUCCEEDED"
    assert top_up.refunded_amount == 0
    assert_flagged_once(
        top_up, "Stripe reported a refund of €5.00 for a top-up of $20.00; no balance was changed."
    )


def test_a_dispute_in_another_currency_debits_no_wallet_and_is_flagged_once(
    fake_stripe, top_up, checkout_completed, send, django_capture_on_commit_callbacks
):
    pi = payment_intent_of(checkout_completed)
    send(checkout_completed)
    opened = in_euros(fake_stripe, fake_stripe.dispute_created_event(pi))
    lost = in_euros(fake_stripe, fake_stripe.dispute_closed_event(pi, status="lost"))

    for event in (opened, opened, lost):
        with django_capture_on_commit_callbacks(execute=True):
            assert send(event) == HTTPStatus.OK

    assert balance() == 20 * NANOS_PER_UNIT
    assert ledger() == [("TOP_UP", 20 * NANOS_PER_UNIT, pi)]
    assert not Wallet.objects.filter(currency="EUR").exists()
    assert state(top_up) == "SUCCEEDED"
    assert_flagged_once(
        top_up,
        "Stripe reported a dispute of €20.00 for a top-up of $20.00; no balance was changed.",
    )


def test_a_refund_in_another_currency_before_the_payment_is_not_retried_forever(
    fake_stripe, top_up, checkout_completed, send, django_capture_on_commit_callbacks
):
    # Its payment may never be credited (say it was flagged too): waiting would last for days.
    pi = payment_intent_of(checkout_completed)
    event = in_euros(fake_stripe, fake_stripe.charge_refunded_event(pi))

    with django_capture_on_commit_callbacks(execute=True):
        assert send(event) == HTTPStatus.OK

    assert events() == {event["id"]: "PROCESSED"}
    assert balance() is None and ledger() == []
    top_up.refresh_from_db()
    assert top_up.flagged and "no balance was changed" in top_up.flag_reason
    assert len(mail.outbox) == 1


def test_a_refund_or_dispute_of_a_payment_set_aside_is_flagged_not_retried_for_days(
    fake_stripe, top_up, checkout_completed, send, django_capture_on_commit_callbacks
):
    """Stripe reported $10.00 for a $20.00 top-up (flagged, not credited); the provider then
    refunds it, and the cardholder disputes it. Nothing was credited, so nothing is taken back:
    each is answered 200 and told to the admin once, not retried for days."""
    pi = payment_intent_of(checkout_completed)
    checkout_completed["data"]["object"].update(amount_total=1000)
    refunded = fake_stripe.charge_refunded_event(pi, amount=1000)
    disputed = fake_stripe.dispute_created_event(pi)

    for event in (checkout_completed, refunded, refunded, disputed, disputed):
        with django_capture_on_commit_callbacks(execute=True):
            assert send(event) == HTTPStatus.OK

    assert balance() is None and ledger() == []
    top_up.refresh_from_db()
    assert (top_up.state, top_up.stripe_payment_intent_id) == ("PENDING", pi)
    assert top_up.payment_set_aside
    assert top_up.flag_reason.splitlines() == [
        "Stripe reported $10.00 for a top-up of $20.00; not credited.",
        "Stripe reported a refund of $10.00 for this top-up, which was never credited; "
        "no balance was changed.",
        "Stripe reported a dispute of $20.00 for this top-up, which was never credited; "
        "no balance was changed.",
    ]
    assert len(mail.outbox) == 3  # one per reason


def test_a_failed_refund_of_a_payment_set_aside_is_flagged_not_retried_for_days(
    fake_stripe, top_up, checkout_completed, send, django_capture_on_commit_callbacks
):
    """The provider refunds a payment that was set aside (never credited) and the refund fails:
    there is no debit to give back, so the failure is told to the admin, not waited on."""
    pi = payment_intent_of(checkout_completed)
    checkout_completed["data"]["object"].update(amount_total=1000)
    refunded, _, failed = refund_then_fail(fake_stripe, pi, amount=1000)
    for event in (checkout_completed, refunded):
        with django_capture_on_commit_callbacks(execute=True):
            assert send(event) == HTTPStatus.OK

    for event in (*failed, *failed):
        with django_capture_on_commit_callbacks(execute=True):
            assert send(event) == HTTPStatus.OK

    assert balance() is None and ledger() == []
    assert set(events().values()) == {"PROCESSED"}
    top_up.refresh_from_db()
    assert (top_up.state, top_up.refund_failed_amount) == ("PENDING", 0)
    assert top_up.flag_reason.splitlines()[-1] == (
        "Stripe reported a failed refund of $10.00 for this top-up, which was never credited; "
        "no balance was changed."
    )
    assert len(mail.outbox) == 3  # the payment, its refund, the refund's failure


def test_a_refund_before_its_payment_still_waits_when_the_top_up_is_flagged_for_something_else(
    fake_stripe, top_up, checkout_completed, send, django_capture_on_commit_callbacks
):
    pi = payment_intent_of(checkout_completed)
    refunded = fake_stripe.charge_refunded_event(pi, amount=500)
    in_other_currency = in_euros(fake_stripe, refunded)
    with django_capture_on_commit_callbacks(execute=True):
        assert send(in_other_currency) == HTTPStatus.OK  # flagged

    assert send(refunded) == HTTPStatus.INTERNAL_SERVER_ERROR  # its payment may still come
    assert send(checkout_completed) == HTTPStatus.OK
    assert send(refunded) == HTTPStatus.OK

    assert balance() == 15 * NANOS_PER_UNIT


# --- a handler that crashes -------------------------------------------------------------------


def test_a_handler_crash_answers_500_and_keeps_the_event_as_failed(fake_stripe, top_up, send):
    # A PaymentIntent naming our top-up but without its currency: the handler cannot credit it.
    event = fake_stripe.event_for(
        "payment_intent.succeeded",
        {
            "id": "pi_broken",
            "object": "payment_intent",
            "amount": 2000,
            "amount_received": 2000,
            "status": "succeeded",
            "metadata": {"top_up_id": str(top_up.public_id)},
        },
    )

    assert send(event) == HTTPStatus.INTERNAL_SERVER_ERROR
    assert send(event) == HTTPStatus.INTERNAL_SERVER_ERROR  # a retry fails the same way

    stored = StripeEvent.objects.get()
    assert (stored.id, stored.status) == (event["id"], "FAILED")
    assert "currency" in stored.error
    assert balance() is None and ledger() == []
    assert state(top_up) == "PENDING"
    assert mail.outbox, "an administrator is emailed when crediting fails"
    assert mail.outbox[0].to == [ADMIN_EMAIL]
    assert event["id"] in mail.outbox[0].subject


def test_a_crashed_event_does_not_block_the_real_confirmation(
    fake_stripe, top_up, checkout_completed, send
):
    broken = fake_stripe.event_for(
        "payment_intent.succeeded",
        {
            "id": "pi_broken",
            "object": "payment_intent",
            "metadata": {"top_up_id": str(top_up.public_id)},
        },
    )
    assert send(broken) == HTTPStatus.INTERNAL_SERVER_ERROR

    assert send(checkout_completed) == HTTPStatus.OK

    assert_credited_once(top_up, payment_intent_of(checkout_completed))


def test_a_long_flag_is_kept_whole_and_a_repeated_reason_is_not_emailed_again(
    top_up, django_capture_on_commit_callbacks
):

    whats = [f"Reason {n}: " + "x" * 300 for n in range(3)]
    reasons = [
        f"Stripe reported {what} of $1.00 for this top-up, which was never credited; "
        "no balance was changed."
        for what in whats
    ]
    for what in [*whats, *whats]:
        with django_capture_on_commit_callbacks(execute=True):
            top_up_flag_uncredited(top_up=top_up, what=what, money=usd("1"))

    top_up.refresh_from_db()
    assert top_up.flag_reason.splitlines() == reasons
    assert len(mail.outbox) == 3
