"""The webhook when what it hands on after its commit fails: the Celery broker is down.

These tests commit for real (transactional), so that the hooks run after the event's own
transaction, as they do in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from billing.models import BillingAccount, StripeEvent
from tests.conftest import forget_broker_connections
from tests.fakes.stripe_server import FakeStripe, signed_event
from tests.fixtures.stripe import post_raw

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# Nothing listens on the discard port: every publish is refused, as with Redis down.
BROKER_DOWN = "redis://127.0.0.1:9/0"


@pytest.fixture
def broker_down(settings: Any) -> Iterator[None]:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = BROKER_DOWN
    forget_broker_connections()
    yield
    forget_broker_connections()


def _broker_back(settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True  # in-process: the task runs at once
    settings.CELERY_BROKER_URL = "memory://"
    forget_broker_connections()


def _send(event: dict[str, Any]) -> int:
    payload, header = signed_event(event, "whsec_test")
    return post_raw(Client(), payload, header).status_code


def test_a_saved_card_is_not_lost_while_the_broker_is_down(
    fake_stripe: FakeStripe, prepaid_client: Client, prepaid_developer: Any, broker_down, settings
):
    prepaid_client.post(reverse("card_setup"))
    [session] = fake_stripe.objects("checkout.session")
    card_saved = fake_stripe.complete_checkout_session(session["id"])

    # The card's lookup could not be handed to a worker: Stripe must send the event again.
    assert _send(card_saved) == HTTPStatus.INTERNAL_SERVER_ERROR
    assert StripeEvent.objects.get().status == StripeEvent.Status.FAILED
    assert BillingAccount.objects.get(user=prepaid_developer).card_last4 == ""

    _broker_back(settings)
    assert _send(card_saved) == HTTPStatus.OK  # Stripe's retry

    account = BillingAccount.objects.get(user=prepaid_developer)
    assert (account.card_brand, account.card_last4) == ("visa", "4242")
    assert StripeEvent.objects.get().status == StripeEvent.Status.PROCESSED


def test_the_failure_email_refused_by_the_mail_server_is_sent_at_the_next_failure(
    settings, deliver_failing
):
    """Stripe retries a failing event for days and the admins hear of it once. When the mail
    server refused that one email, they never heard of it at all."""

    settings.ADMINS = [("Ops", "ops@example.com")]
    StripeEvent.objects.create(id="evt_failing", type="payment_intent.succeeded", payload={})
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens: refused

    assert deliver_failing("evt_failing")[0] == 500

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # the server is back
    deliver_failing("evt_failing")
    deliver_failing("evt_failing")

    [email] = mail.outbox
    assert "evt_failing" in email.subject and "boom" in email.body
    assert StripeEvent.objects.get(id="evt_failing").attempts == 3
