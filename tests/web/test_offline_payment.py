"""Offline mode (no STRIPE_SECRET_KEY): the test-payment page stands in for Stripe Checkout and
its signed event reaches the real webhook handler from a short-lived thread ~1.5 s later."""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import LedgerEntry, StripeEvent, TopUp, Wallet
from billing.payments.stripe_gateway import CHECKOUT_LIFETIME
from billing.top_ups.checkout import TopUpNotCancelled, top_up_cancel, top_up_pay_offline
from tests.conftest import NANOS_PER_UNIT
from tests.fixtures.stripe import add_credit, latest_top_up

transactional = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def new_timers(before: set[threading.Thread]) -> list[threading.Thread]:
    """The delivery threads the test-payment page started (billing/offline.py)."""
    return [t for t in threading.enumerate() if t not in before and isinstance(t, threading.Timer)]


def pay_on_the_test_page(client, outcome: str) -> tuple[TopUp, object, list[threading.Thread]]:
    response = add_credit(client, "20")
    top_up = latest_top_up()
    test_page = reverse("test_payment", args=[top_up.public_id])
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].endswith(test_page)
    before = set(threading.enumerate())
    answer = client.post(test_page, {"outcome": outcome})
    return top_up, answer, new_timers(before)


def text(response) -> str:
    """What a reader sees: the page without tags, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def top_up_state(top_up: TopUp) -> str:
    return TopUp.objects.values_list("state", flat=True).get(pk=top_up.pk)


@transactional
def test_paying_on_the_test_page_credits_once_after_the_redirect(prepaid_client):
    top_up, answer, timers = pay_on_the_test_page(prepaid_client, "pay")
    status_url = reverse("top_up_status", args=[top_up.public_id])

    assert answer.status_code == HTTPStatus.FOUND
    assert answer["Location"] == status_url
    assert len(timers) == 1
    # Like Stripe, the confirmation lands after the developer is back on the status page.
    first_look = prepaid_client.get(status_url)
    assert "Pending: waiting for the payment of $20.00 to be confirmed." in text(first_look)
    assert not LedgerEntry.objects.exists()

    assert wait_for(lambda: top_up_state(top_up) == "SUCCEEDED")
    timers[0].join(timeout=10)
    assert not timers[0].is_alive()

    wallet = Wallet.objects.get(currency="USD")
    assert wallet.balance == 20 * NANOS_PER_UNIT
    [entry] = LedgerEntry.objects.all()
    assert entry.transaction_id.startswith("pi_offline_")
    assert (entry.kind, entry.amount, entry.actor_type) == ("TOP_UP", 20 * NANOS_PER_UNIT, "STRIPE")
    [event] = StripeEvent.objects.all()
    assert (event.type, event.status) == ("checkout.session.completed", "PROCESSED")
    done = prepaid_client.get(status_url, headers={"HX-Request": "true"})
    assert "Done: $20.00 was added to your balance." in text(done)
    assert "Your USD balance: $20.00" in text(done)


@transactional
def test_cancelling_right_after_paying_on_the_test_page_cancels_nothing(prepaid_client):
    """The event lands 1.5 s after Pay; a cancel in between said "Nothing was charged" and the
    payment then credited the cancelled top-up."""
    top_up, _, timers = pay_on_the_test_page(prepaid_client, "pay")

    answer = prepaid_client.post(reverse("top_up_cancel", args=[top_up.public_id]), follow=True)

    assert "already paid on the test payment page, so it cannot be cancelled" in text(answer)
    assert "Nothing was charged" not in text(answer)
    assert wait_for(lambda: top_up_state(top_up) == "SUCCEEDED")
    timers[0].join(timeout=10)
    assert Wallet.objects.get(currency="USD").balance == 20 * NANOS_PER_UNIT


@pytest.mark.django_db
def test_of_a_pay_and_a_cancel_at_the_same_moment_exactly_one_wins(prepaid_client):
    """Each request works from the top-up as it loaded it; the database decides."""

    add_credit(prepaid_client, "20")
    as_pay_saw_it, as_cancel_saw_it = latest_top_up(), latest_top_up()
    assert top_up_cancel(top_up=as_cancel_saw_it)  # the cancel lands first
    assert not top_up_pay_offline(top_up=as_pay_saw_it, payment_intent_id="pi_offline_x")
    assert top_up_state(as_pay_saw_it) == "CANCELED"

    TopUp.objects.update(state=TopUp.State.PENDING, stripe_payment_intent_id=None)
    as_pay_saw_it, as_cancel_saw_it = latest_top_up(), latest_top_up()
    assert top_up_pay_offline(top_up=as_pay_saw_it, payment_intent_id="pi_offline_x")  # Pay first
    with pytest.raises(TopUpNotCancelled, match="already paid on the test payment page"):
        top_up_cancel(top_up=as_cancel_saw_it)
    assert top_up_state(as_cancel_saw_it) == "PENDING"


@transactional
def test_declining_on_the_test_page_fails_the_top_up(prepaid_client):
    top_up, answer, timers = pay_on_the_test_page(prepaid_client, "decline")

    assert answer.status_code == HTTPStatus.FOUND
    assert wait_for(lambda: top_up_state(top_up) == "FAILED")
    timers[0].join(timeout=10)

    top_up.refresh_from_db()
    assert top_up.failure_reason == "Your card was declined (test payment)."
    assert not Wallet.objects.exists()
    assert StripeEvent.objects.get().status == "PROCESSED"
    status = prepaid_client.get(reverse("top_up_status", args=[top_up.public_id]))
    assert "Failed: Your card was declined (test payment). Nothing was added." in text(status)


@pytest.mark.postgres
@transactional
def test_a_double_click_on_pay_still_credits_once(postgres, prepaid_client):
    # Two signed events for one payment, delivered by two threads at nearly the same moment.
    # PostgreSQL only: the in-memory SQLite test database raises "table is locked" instead
    # of waiting when two threads write at once.
    top_up, _, timers = pay_on_the_test_page(prepaid_client, "pay")
    before = set(threading.enumerate())
    second = prepaid_client.post(
        reverse("test_payment", args=[top_up.public_id]), {"outcome": "pay"}
    )
    timers += new_timers(before)

    assert second.status_code == HTTPStatus.FOUND
    for timer in timers:
        timer.join(timeout=10)
    assert top_up_state(top_up) == "SUCCEEDED"
    assert Wallet.objects.get(currency="USD").balance == 20 * NANOS_PER_UNIT
    assert LedgerEntry.objects.count() == 1


@pytest.mark.django_db
def test_the_test_payment_page_is_clearly_labelled(prepaid_client):
    add_credit(prepaid_client, "20")

    page = prepaid_client.get(reverse("test_payment", args=[latest_top_up().public_id]))

    assert page.status_code == HTTPStatus.OK
    assert "TEST PAYMENT · offline mode · no card is charged" in text(page)
    assert '<button type="submit" name="outcome" value="pay">Pay $20.00</button>' in (
        page.content.decode()
    )


@pytest.mark.django_db
def test_the_test_payment_page_needs_a_choice(prepaid_client):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    before = set(threading.enumerate())

    page = prepaid_client.post(reverse("test_payment", args=[top_up.public_id]), {"outcome": "x"})

    assert "Choose Pay or Decline." in text(page)
    assert new_timers(before) == []
    assert top_up_state(top_up) == "PENDING"


@pytest.mark.django_db
def test_a_cancelled_top_up_cannot_be_paid_on_the_test_page(prepaid_client):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    prepaid_client.post(reverse("top_up_cancel", args=[top_up.public_id]))
    before = set(threading.enumerate())

    page = prepaid_client.post(reverse("test_payment", args=[top_up.public_id]), {"outcome": "pay"})

    assert page.status_code == HTTPStatus.OK
    assert "This payment is finished: cancelled." in text(page)
    assert new_timers(before) == []


@pytest.mark.django_db
def test_the_test_page_expires_after_an_hour_like_stripes(prepaid_client):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    an_hour_ago = timezone.now() - CHECKOUT_LIFETIME - timedelta(seconds=1)
    TopUp.objects.filter(pk=top_up.pk).update(created_at=an_hour_ago)
    before = set(threading.enumerate())

    page = prepaid_client.post(reverse("test_payment", args=[top_up.public_id]), {"outcome": "pay"})

    assert "This payment is finished: cancelled." in text(page)
    assert new_timers(before) == []
    top_up.refresh_from_db()
    assert (top_up.state, top_up.failure_reason) == (
        "CANCELED",
        "The payment page expired before payment.",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_the_test_payment_page_is_404_when_stripe_is_configured(prepaid_client, settings, method):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test"
    before = set(threading.enumerate())

    response = getattr(prepaid_client, method)(
        reverse("test_payment", args=[top_up.public_id]), {"outcome": "pay"}
    )

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert new_timers(before) == []


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_someone_elses_test_payment_page_is_404(prepaid_client, client, other_developer, method):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    client.force_login(other_developer)
    before = set(threading.enumerate())

    response = getattr(client, method)(
        reverse("test_payment", args=[top_up.public_id]), {"outcome": "pay"}
    )

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert new_timers(before) == []
    assert top_up_state(top_up) == "PENDING"


@pytest.mark.django_db
def test_the_test_payment_page_needs_a_login(prepaid_client):
    add_credit(prepaid_client, "20")
    prepaid_client.logout()

    response = prepaid_client.get(reverse("test_payment", args=[latest_top_up().public_id]))

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.django_db
def test_a_top_up_stripe_could_not_charge_fails_with_the_reason_on_the_test_page(
    prepaid_client, prepaid_developer
):
    """A pending top-up from before Add credit refused KWD 5.123 (Stripe takes three-decimal
    amounts only with a last digit of 0): paying it says why, and nothing is credited."""
    top_up = TopUp.objects.create(
        billing_account=prepaid_developer.billing_account,
        currency="KWD",
        amount=5_123_000_000,
        stripe_checkout_session_id="cs_offline_legacy",
    )
    before = set(threading.enumerate())

    answer = prepaid_client.post(
        reverse("test_payment", args=[top_up.public_id]), {"outcome": "pay"}
    )

    assert answer.status_code == HTTPStatus.FOUND
    assert new_timers(before) == []
    assert top_up_state(top_up) == "FAILED"
    status = prepaid_client.get(reverse("top_up_status", args=[top_up.public_id]))
    assert (
        "Failed: KWD amounts must be a multiple of 0.010: KWD5.123 cannot be charged exactly."
        in text(status)
    )
    assert not Wallet.objects.exists()
