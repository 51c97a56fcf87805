"""The fake Stripe server, driven by the real stripe library (16.1.0) over 127.0.0.1."""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import stripe

from tests.fakes.stripe_server import (
    FakeStripe,
    FakeStripeProcess,
    decode_form,
    send_webhook,
    sign_payload,
    signed_event,
)

API_KEY = "sk_test_fake"
WEBHOOK_SECRET = "whsec_test_fake"


@pytest.fixture(autouse=True)
def no_stripe_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    # With telemetry on, the library writes ~/.config/stripe/telemetry_id on the first request.
    monkeypatch.setattr(stripe, "enable_telemetry", False)


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


@pytest.fixture
def http_client() -> Iterator[stripe.HTTPClient]:
    session = requests.Session()
    session.trust_env = False  # never route through HTTP(S)_PROXY: traffic stays on 127.0.0.1
    yield stripe.RequestsClient(session=session)
    session.close()  # an unclosed pooled socket would be a ResourceWarning, i.e. an error here


def make_client(url: str, http_client: stripe.HTTPClient, retries: int = 0) -> stripe.StripeClient:
    # Every base address points at the fake, so no code path can reach *.stripe.com.
    bases: Any = {"api": url, "files": url, "connect": url, "meter_events": url}
    return stripe.StripeClient(
        API_KEY, base_addresses=bases, max_network_retries=retries, http_client=http_client
    )


@pytest.fixture
def client(fake: FakeStripe, http_client: stripe.HTTPClient) -> stripe.StripeClient:
    return make_client(fake.url, http_client)


@pytest.fixture
def global_stripe(
    fake: FakeStripe, http_client: stripe.HTTPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point the module-level API (stripe.Customer.create, ...) at the fake; undone afterwards."""
    for name in ("api_base", "connect_api_base", "upload_api_base", "meter_events_api_base"):
        monkeypatch.setattr(stripe, name, fake.url)
    monkeypatch.setattr(stripe, "api_key", API_KEY)
    monkeypatch.setattr(stripe, "max_network_retries", 0)  # the module default is 2
    monkeypatch.setattr(stripe, "default_http_client", http_client)


@pytest.fixture
def card(fake: FakeStripe, client: stripe.StripeClient) -> str:
    """A saved card on a customer, ready for off-session payments."""
    customer = client.v1.customers.create(params={"email": "dev@example.com"})
    return fake.add_payment_method(customer=customer.id)["id"]


def charge_off_session(
    client: stripe.StripeClient, payment_method: str, **options: Any
) -> stripe.PaymentIntent:
    card = client.v1.payment_methods.retrieve(payment_method)
    params: Any = {
        "amount": 2500,
        "currency": "eur",
        "customer": card.customer,
        "payment_method": payment_method,
        "off_session": True,
        "confirm": True,
        "metadata": {"reason": "auto_recharge"},
    }
    return client.v1.payment_intents.create(params=params, options=options or None)


def payment_session_params(customer: str | None = None) -> Any:
    return {
        "mode": "payment",
        "customer": customer,
        "line_items": [
            {
                "price_data": {
                    "currency": "eur",
                    "unit_amount": 500,
                    "product_data": {"name": "Prepaid credit"},
                },
                "quantity": 2,
            }
        ],
        "payment_method_types": ["card"],
        "metadata": {"topup": "7"},
        "payment_intent_data": {"metadata": {"topup": "7"}},
        "success_url": "http://127.0.0.1:9/done?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:9/cancelled",
    }


def test_decode_form_builds_nested_dicts_and_lists() -> None:
    body = (
        "metadata[account]=42&line_items[0][price_data][unit_amount]=500"
        "&line_items[0][quantity]=2&payment_method_types[0]=card&expand[]=customer"
    )
    assert decode_form(body) == {
        "metadata": {"account": "42"},
        "line_items": [{"price_data": {"unit_amount": "500"}, "quantity": "2"}],
        "payment_method_types": ["card"],
        "expand": ["customer"],
    }


def test_checkout_top_up_is_created_completed_and_retrieved(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create(params={"email": "dev@example.com"})
    assert customer.id.startswith("cus_")

    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))

    assert session.id.startswith("cs_test_")
    assert session.url.startswith(fake.url)
    assert (session.status, session.payment_status) == ("open", "unpaid")
    assert session.payment_intent is None
    assert (session.amount_total, session.currency) == (1000, "eur")
    assert session.metadata.to_dict() == {"topup": "7"}
    sent = fake.received_requests()[-1]
    assert sent["params"]["line_items"][0]["price_data"]["unit_amount"] == "500"
    assert sent["params"]["payment_method_types"] == ["card"]
    assert sent["idempotency_key"]  # the library adds one to every POST

    event = fake.complete_checkout_session(session.id)

    assert event["type"] == "checkout.session.completed"
    assert event["id"].startswith("evt_")
    assert (event["object"], event["livemode"]) == ("event", False)
    assert event["api_version"] == stripe.api_version
    completed = event["data"]["object"]
    assert (completed["status"], completed["payment_status"]) == ("complete", "paid")
    assert completed["payment_intent"].startswith("pi_")

    retrieved = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent"]}
    )
    intent = retrieved.payment_intent
    assert (intent.status, intent.amount_received) == ("succeeded", 1000)
    assert intent.latest_charge.startswith("ch_")
    assert intent.metadata.to_dict() == {"topup": "7"}


def test_checkout_expires_at_follows_stripes_limits_and_expire_closes_it(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    now = int(time.time())
    for wrong in (now + 10 * 60, now + 25 * 3600):
        with pytest.raises(stripe.InvalidRequestError, match="expires_at"):
            client.v1.checkout.sessions.create(
                params={**payment_session_params(), "expires_at": wrong}
            )
    session = client.v1.checkout.sessions.create(
        params={**payment_session_params(), "expires_at": now + 3600}
    )
    assert session.expires_at == now + 3600

    expired = client.v1.checkout.sessions.expire(session.id)

    assert expired.status == "expired"
    assert fake.events()[-1]["type"] == "checkout.session.expired"
    with pytest.raises(stripe.InvalidRequestError, match="not open"):
        client.v1.checkout.sessions.expire(session.id)


def test_unpaid_completion_leaves_the_payment_processing(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    session = client.v1.checkout.sessions.create(params=payment_session_params())

    event = fake.complete_checkout_session(session.id, paid=False)

    assert event["data"]["object"]["payment_status"] == "unpaid"
    intent = client.v1.payment_intents.retrieve(event["data"]["object"]["payment_intent"])
    assert (intent.status, intent.latest_charge) == ("processing", None)


def test_a_declined_card_on_the_payment_page_leaves_the_session_open_for_another(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    """Stripe Checkout shows a decline and lets the customer try another card: the PaymentIntent
    fails (payment_intent.payment_failed), the session does not."""
    session = client.v1.checkout.sessions.create(params=payment_session_params())

    failed = fake.decline_checkout_attempt(session.id)

    intent = failed["data"]["object"]
    assert failed["type"] == "payment_intent.payment_failed"
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["code"] == "card_declined"
    assert intent["metadata"] == {"topup": "7"}  # payment_intent_data, as for a payment
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"

    completed = fake.complete_checkout_session(session.id)

    paid = completed["data"]["object"]
    assert (paid["status"], paid["payment_status"]) == ("complete", "paid")
    assert paid["payment_intent"] == intent["id"]  # the same PaymentIntent, paid now
    assert client.v1.payment_intents.retrieve(intent["id"]).status == "succeeded"


def test_module_level_api_setup_session(fake: FakeStripe, global_stripe: None) -> None:
    customer = stripe.Customer.create(email="dev@example.com")
    session = stripe.checkout.Session.create(
        mode="setup",
        customer=customer.id,
        currency="eur",
        payment_method_types=["card"],
        success_url="http://127.0.0.1:9/done",
        cancel_url="http://127.0.0.1:9/cancelled",
    )
    assert session.payment_status == "no_payment_required"

    event = fake.complete_checkout_session(session.id)

    setup_intent = stripe.SetupIntent.retrieve(event["data"]["object"]["setup_intent"])
    assert setup_intent.status == "succeeded"
    card = stripe.PaymentMethod.retrieve(setup_intent.payment_method)
    assert (card.card.brand, card.card.last4) == ("visa", "4242")
    assert card.customer == customer.id
    assert [r["path"] for r in fake.received_requests()][:2] == [
        "/v1/customers",
        "/v1/checkout/sessions",
    ]


def test_setup_intent_create_and_retrieve(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    created = client.v1.setup_intents.create(
        params={"customer": customer.id, "usage": "off_session"}
    )

    assert created.id.startswith("seti_")
    assert created.status == "requires_payment_method"
    assert client.v1.setup_intents.retrieve(created.id).customer == customer.id


def test_off_session_payment_succeeds(
    fake: FakeStripe, client: stripe.StripeClient, card: str
) -> None:
    intent = charge_off_session(client, card)

    assert intent.id.startswith("pi_")
    assert (intent.status, intent.amount_received) == ("succeeded", 2500)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert charge.payment_method_details.card.last4 == "4242"
    sent = fake.received_requests()[-2]
    assert (sent["params"]["off_session"], sent["params"]["confirm"]) == ("true", "true")


@pytest.mark.parametrize(
    "currency, amount, message",
    [
        ("usd", 49, "Amount must be at least 0.50 usd"),
        ("gbp", 29, "Amount must be at least 0.30 gbp"),
        ("jpy", 49, "Amount must be at least 50 jpy"),
    ],
)
def test_a_charge_below_stripes_minimum_is_refused_as_amount_too_small(
    fake: FakeStripe, client: stripe.StripeClient, card: str, currency, amount, message
) -> None:
    """Stripe's minimum charge (USD 0.50, GBP 0.30, JPY 50, ...): nothing is charged."""
    customer = client.v1.payment_methods.retrieve(card).customer
    params: Any = {"amount": amount, "currency": currency, "customer": customer}
    params |= {"payment_method": card, "off_session": True, "confirm": True}

    with pytest.raises(stripe.InvalidRequestError, match=message) as raised:
        client.v1.payment_intents.create(params=params)

    assert (raised.value.code, raised.value.param) == ("amount_too_small", "amount")
    assert fake.objects("payment_intent") == [] and fake.objects("charge") == []
    params["amount"] += 1  # the minimum itself is charged
    assert client.v1.payment_intents.create(params=params).status == "succeeded"


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({f"k{n}": "v" for n in range(51)}, "at most 50 keys"),
        ({"k" * 41: "v"}, "longer than 40 characters"),
        ({"top_up_id": "v" * 501}, "longer than 500 characters"),
    ],
)
def test_metadata_beyond_stripes_limits_is_refused(
    fake: FakeStripe, client: stripe.StripeClient, metadata: Any, message: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError, match=message):
        client.v1.customers.create(params={"metadata": metadata})

    assert fake.objects("customer") == []
    at_the_limits = {f"k{n:02d}" + "k" * 37: "v" * 500 for n in range(50)}
    created = client.v1.customers.create(params={"metadata": at_the_limits})
    assert fake.get_object(created.id)["metadata"] == at_the_limits


def test_a_customer_name_longer_than_256_characters_is_refused(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="at most 256 characters") as raised:
        client.v1.customers.create(params={"name": "n" * 257})

    assert raised.value.param == "name"
    assert client.v1.customers.create(params={"name": "n" * 256}).name == "n" * 256


def test_a_payment_page_below_stripes_minimum_is_refused(client: stripe.StripeClient) -> None:
    params = payment_session_params()
    params["line_items"][0]["price_data"] |= {"currency": "usd", "unit_amount": 24}

    with pytest.raises(stripe.InvalidRequestError, match="at least 0.50 usd") as raised:
        client.v1.checkout.sessions.create(params=params)

    assert raised.value.code == "amount_too_small"
    params["line_items"][0]["price_data"]["unit_amount"] = 25  # two of them: 0.50
    assert client.v1.checkout.sessions.create(params=params).amount_total == 50


@pytest.mark.parametrize("choose", ["by_payment_method", "stripe_test_card"])
def test_off_session_payment_declined(
    fake: FakeStripe, client: stripe.StripeClient, card: str, choose: str
) -> None:
    if choose == "by_payment_method":
        fake.set_card_behaviour("card_declined", payment_method=card)
    else:
        card = "pm_card_chargeDeclined"

    with pytest.raises(stripe.CardError) as caught:
        charge_off_session(client, card)

    error = caught.value
    assert (error.code, error.http_status) == ("card_declined", 402)
    assert error.error is not None
    assert error.error.decline_code == "generic_decline"
    intent = client.v1.payment_intents.retrieve(error.error.payment_intent.id)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.code == "card_declined"
    failed = fake.payment_intent_failed_event(intent.id)
    assert failed["type"] == "payment_intent.payment_failed"
    assert failed["data"]["object"]["last_payment_error"]["decline_code"] == "generic_decline"


def test_off_session_payment_needs_authentication(
    fake: FakeStripe, client: stripe.StripeClient, card: str
) -> None:
    fake.set_card_behaviour("authentication_required")  # the default for every card

    with pytest.raises(stripe.CardError) as caught:
        charge_off_session(client, card)

    assert caught.value.code == "authentication_required"
    assert caught.value.error is not None
    intent = client.v1.payment_intents.retrieve(caught.value.error.payment_intent.id)
    assert intent.status == "requires_action"
    assert intent.last_payment_error.code == "authentication_required"


def test_on_session_authentication_is_not_an_error(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 500,
            "currency": "eur",
            "payment_method": "pm_card_authenticationRequired",
            "confirm": True,
        }
    )

    assert intent.status == "requires_action"
    assert intent.next_action.type == "use_stripe_sdk"


def test_idempotency_key_replays_and_rejects_changed_params(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    options: Any = {"idempotency_key": "signup-1"}
    first = client.v1.customers.create(params={"email": "a@example.com"}, options=options)
    again = client.v1.customers.create(params={"email": "a@example.com"}, options=options)

    assert again.id == first.id
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert [r["replayed"] for r in fake.received_requests()] == [False, True]
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"email": "b@example.com"}, options=options)


def test_idempotency_key_replays_a_decline(
    fake: FakeStripe, client: stripe.StripeClient, card: str
) -> None:
    fake.set_card_behaviour("card_declined", payment_method=card)
    intents = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as caught:
            charge_off_session(client, card, idempotency_key="recharge-9")
        assert caught.value.error is not None
        intents.append(caught.value.error.payment_intent.id)

    assert intents[0] == intents[1]


def test_a_refusal_for_an_object_stripe_did_not_find_is_kept_under_its_key(
    client: stripe.StripeClient,
) -> None:
    # The endpoint had begun (it looked the customer up), so Stripe saves the 400 as it saves
    # a decline: the same key replays it, and with another customer it is a misused key.
    options: Any = {"idempotency_key": "top-up-1-checkout"}
    params = payment_session_params() | {"customer": "cus_gone"}
    replayed = []
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.checkout.sessions.create(params=params, options=options)
        assert refused.value.code == "resource_missing"
        replayed.append((refused.value.headers or {}).get("Idempotent-Replayed"))
    assert replayed == [None, "true"]

    customer = client.v1.customers.create(params={"email": "a@example.com"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(
            params=params | {"customer": customer.id}, options=options
        )


def test_server_errors_are_retried_with_the_same_key(
    fake: FakeStripe,
    http_client: stripe.HTTPClient,
    card: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The library sleeps at least 0.5 s between retries; shrink that for the test.
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.02)
    fake.set_card_behaviour("server_error", payment_method=card, times=2)
    retrying = make_client(fake.url, http_client, retries=2)

    intent = charge_off_session(retrying, card)

    assert intent.status == "succeeded"
    attempts = [r for r in fake.received_requests() if r["path"] == "/v1/payment_intents"]
    assert [a["status"] for a in attempts] == [500, 500, 200]
    assert len({a["idempotency_key"] for a in attempts}) == 1


def test_a_saved_server_error_is_replayed_under_its_key_as_stripe_does(
    fake: FakeStripe, client: stripe.StripeClient, card: str
) -> None:
    fake.set_card_behaviour("saved_server_error", payment_method=card, times=1)
    replayed = []
    for _ in range(2):
        with pytest.raises(stripe.APIError) as caught:
            charge_off_session(client, card, idempotency_key="recharge-saved")
        replayed.append((caught.value.headers or {}).get("Idempotent-Replayed"))

    assert replayed == [None, "true"]
    assert fake.objects("payment_intent") == []
    assert charge_off_session(client, card, idempotency_key="recharge-new").status == "succeeded"


def test_payment_intents_are_listed_newest_first_per_customer(
    fake: FakeStripe, client: stripe.StripeClient, card: str
) -> None:
    fake.set_card_behaviour("saved_server_error_after_charge", payment_method=card, times=1)
    with pytest.raises(stripe.APIError):
        charge_off_session(client, card, idempotency_key="recharge-after")
    second = charge_off_session(client, card)
    customer = second.customer

    listed = client.v1.payment_intents.list(params={"customer": customer, "limit": 10})

    assert [i.id for i in listed.data][0] == second.id
    assert len(listed.data) == 2 and all(i.status == "succeeded" for i in listed.data)
    assert client.v1.payment_intents.list(params={"customer": "cus_other"}).data == []


def test_server_error_without_retries_raises_api_error(
    fake: FakeStripe, client: stripe.StripeClient, card: str
) -> None:
    fake.set_card_behaviour("server_error", times=1)

    with pytest.raises(stripe.APIError) as caught:
        charge_off_session(client, card)

    assert caught.value.http_status == 500
    assert charge_off_session(client, card).status == "succeeded"


def test_refund_and_dispute_events(
    fake: FakeStripe, client: stripe.StripeClient, card: str
) -> None:
    intent = charge_off_session(client, card)

    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1000})
    assert refund.id.startswith("re_")
    assert (refund.amount, refund.charge) == (1000, intent.latest_charge)

    refunded = fake.charge_refunded_event(intent.id)  # refunds the remaining 1500
    charge = refunded["data"]["object"]
    assert refunded["type"] == "charge.refunded"
    assert (charge["amount_refunded"], charge["refunded"]) == (2500, True)
    assert charge["payment_intent"] == intent.id
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": intent.id})
    assert caught.value.code == "charge_already_refunded"

    opened = fake.dispute_created_event(intent.id)
    closed = fake.dispute_closed_event(intent.id, status="lost")
    assert (opened["type"], closed["type"]) == ("charge.dispute.created", "charge.dispute.closed")
    dispute = closed["data"]["object"]
    assert dispute["id"] == opened["data"]["object"]["id"]
    assert (dispute["status"], dispute["payment_intent"]) == ("lost", intent.id)

    succeeded = fake.payment_intent_succeeded_event(intent.id)
    assert succeeded["data"]["object"]["id"] == intent.id
    assert len(fake.events()) == 4


def test_a_failed_refund_is_reported_by_the_events_stripe_sends(
    fake: FakeStripe, client: stripe.StripeClient, card: str
) -> None:
    intent = charge_off_session(client, card)
    fake.charge_refunded_event(intent.id, amount=1000)
    refund_id = fake.latest_refund(intent.id)["id"]

    events = fake.refund_failed_events(refund_id)

    assert [e["type"] for e in events] == [
        "charge.refund.updated",
        "refund.updated",
        "refund.failed",
    ]
    for event in events:
        refund = event["data"]["object"]
        assert (refund["id"], refund["object"], refund["status"]) == (refund_id, "refund", "failed")
        assert (refund["amount"], refund["currency"]) == (1000, intent.currency)
        assert refund["payment_intent"] == intent.id
        assert refund["failure_reason"] == "expired_or_canceled_card"
        assert refund["failure_balance_transaction"].startswith("txn_")
    retrieved = client.v1.refunds.retrieve(refund_id)
    assert (retrieved.status, retrieved.failure_reason) == ("failed", "expired_or_canceled_card")
    with pytest.raises(ValueError, match="already failed"):
        fake.refund_failed_events(refund_id)


def test_errors_have_stripe_statuses(fake: FakeStripe, http_client: stripe.HTTPClient) -> None:
    client = make_client(fake.url, http_client)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.customers.retrieve("cus_missing")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")

    with pytest.raises(stripe.InvalidRequestError) as bad_ref:
        client.v1.payment_intents.create(
            params={"amount": 100, "currency": "eur", "customer": "cus_missing"}
        )
    assert (bad_ref.value.http_status, bad_ref.value.param) == (400, "customer")

    live = stripe.StripeClient(
        "sk_live_nope", base_addresses={"api": fake.url}, http_client=http_client
    )
    with pytest.raises(stripe.AuthenticationError) as unauthorised:
        live.v1.customers.create()
    assert unauthorised.value.http_status == 401


def test_api_key_checks_without_the_library(fake: FakeStripe) -> None:
    basic = "Basic " + base64.b64encode(b"sk_test_curl:").decode()
    cases = {"": 401, "Bearer sk_live_x": 401, "Bearer sk_test_x": 200, basic: 200}
    for authorization, status in cases.items():
        headers = {"authorization": authorization} if authorization else {}
        assert fake.handle("POST", "/v1/customers", headers, "email=a%40b.c").status == status


def test_signed_payload_is_accepted_by_the_library(client: stripe.StripeClient) -> None:
    event = {
        "id": "evt_1",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_1", "object": "payment_intent"}},
    }
    payload, header = signed_event(event, WEBHOOK_SECRET)

    constructed = stripe.Webhook.construct_event(payload, header, WEBHOOK_SECRET)
    assert (constructed.id, constructed.type) == ("evt_1", "payment_intent.succeeded")
    assert client.construct_event(payload, header, WEBHOOK_SECRET).data.object.id == "pi_1"

    stale = sign_payload(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.Webhook.construct_event(payload, stale, WEBHOOK_SECRET)
    forged = sign_payload(payload, "whsec_someone_else")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, forged, WEBHOOK_SECRET)


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[bytes, str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, self.headers["Stripe-Signature"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_send_webhook_delivers_a_signed_event_to_loopback_only(fake: FakeStripe) -> None:
    event = fake.event_for("checkout.session.expired", {"id": "cs_test_1"})
    with ThreadingHTTPServer(("127.0.0.1", 0), _Receiver) as receiver:
        thread = threading.Thread(target=receiver.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{receiver.server_address[1]}/stripe/webhook/"
        status, _ = send_webhook(url, event, WEBHOOK_SECRET)
        receiver.shutdown()
        thread.join()

    assert status == 200
    body, header = _Receiver.received[-1]
    assert stripe.Webhook.construct_event(body, header, WEBHOOK_SECRET).id == event["id"]
    for outside in ("http://10.0.0.1/hook", "http://localhost/hook", "https://127.0.0.1/x"):
        with pytest.raises(ValueError):
            send_webhook(outside, event, WEBHOOK_SECRET)


def test_hosted_checkout_page_pays_and_redirects(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    session = client.v1.checkout.sessions.create(params=payment_session_params())
    address = urllib.parse.urlsplit(fake.url)
    connection = http.client.HTTPConnection(str(address.hostname), address.port, timeout=10)
    try:
        connection.request("GET", f"/checkout/{session.id}")
        page = connection.getresponse()
        assert (page.status, b"Pay 1000 eur" in page.read()) == (200, True)
        connection.request("POST", f"/checkout/{session.id}/pay")
        redirect = connection.getresponse()
        redirect.read()
    finally:
        connection.close()

    assert redirect.status == 303
    assert redirect.headers["Location"] == f"http://127.0.0.1:9/done?session={session.id}"
    assert fake.get_object(session.id)["payment_status"] == "paid"
    assert fake.events()[-1]["type"] == "checkout.session.completed"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_subprocess_mode(http_client: stripe.HTTPClient) -> None:
    port = free_port()
    with FakeStripeProcess(port=port) as process:
        assert process.url == f"http://127.0.0.1:{port}"
        remote = make_client(process.url, http_client)
        customer = remote.v1.customers.create(params={"email": "dev@example.com"})
        session = remote.v1.checkout.sessions.create(params=payment_session_params(customer.id))

        event = process.complete_checkout_session(session.id)

        assert event["data"]["object"]["payment_status"] == "paid"
        intent_id = event["data"]["object"]["payment_intent"]
        refunded = process.payment_intent_event(intent_id, "charge.refunded", amount=100)
        assert refunded["data"]["object"]["amount_refunded"] == 100
        refund = process.latest_refund(intent_id)
        failed = process.refund_failed_events(refund["id"])
        assert [e["data"]["object"]["status"] for e in failed] == ["failed"] * 3
        process.set_card_behaviour("card_declined")
        card = process.add_payment_method(customer=customer.id)
        with pytest.raises(stripe.CardError):
            charge_off_session(remote, card["id"])
        assert [r["path"] for r in process.received_requests()] == [
            "/v1/customers",
            "/v1/checkout/sessions",
            f"/v1/payment_methods/{card['id']}",
            "/v1/payment_intents",
        ]
        assert process.events()[0]["type"] == "checkout.session.completed"

    with pytest.raises(stripe.APIConnectionError):
        remote.v1.customers.retrieve(customer.id)
