"""Fixtures for the Stripe top-up tests: the fake Stripe API, a prepaid developer, and helpers
that start a top-up through the Add credit page and deliver signed events to the webhook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from django.test import Client
from django.urls import reverse

from billing.billing_type.services import billing_type_set
from billing.models import BillingTypeChange, TopUp
from tests.fakes.stripe_server import FakeStripe, sign_payload, signed_event

API_KEY = "sk_test_x"
WEBHOOK_SECRET = "whsec_test"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def stay_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stripe library uses requests, which honours proxy variables: none may apply here."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setattr(stripe, "enable_telemetry", False)


@pytest.fixture
def fake_stripe(settings: Any) -> Iterator[FakeStripe]:
    """Online mode: the real stripe library talks to a fake Stripe on 127.0.0.1."""
    with FakeStripe() as fake:
        settings.STRIPE_SECRET_KEY = API_KEY
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_API_BASE = fake.url
        settings.STRIPE_MAX_NETWORK_RETRIES = 0
        yield fake


def make_prepaid(user: Any) -> Any:
    billing_type_set(
        account=user.billing_account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    user.billing_account.refresh_from_db()
    return user


@pytest.fixture
def prepaid_developer(developer: Any) -> Any:
    return make_prepaid(developer)


@pytest.fixture
def prepaid_client(client: Client, prepaid_developer: Any) -> Client:
    client.force_login(prepaid_developer)
    return client


def add_credit(client: Client, amount: str, currency: str = "USD") -> Any:
    return client.post(reverse("add_credit", args=[currency]), {"amount": amount})


def latest_top_up() -> TopUp:
    return TopUp.objects.latest("created_at")


def deliver(client: Client, event: dict[str, Any], secret: str = WEBHOOK_SECRET) -> Any:
    """POST an event to the webhook the way Stripe does: raw JSON body, signed header."""
    payload, header = signed_event(event, secret)
    return post_raw(client, payload, header)


def post_raw(client: Client, payload: bytes, header: str | None) -> Any:
    extra = {} if header is None else {"HTTP_STRIPE_SIGNATURE": header}
    return client.generic(
        "POST", reverse("stripe_webhook"), payload, content_type="application/json", **extra
    )


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return sign_payload(payload, secret, timestamp)


def event_json(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()
