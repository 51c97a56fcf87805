"""The fake Stripe's slow answer, which the killed-worker tests rely on: the PaymentIntent exists
at once, only its answer waits, nothing else is held up, and the same key replays it."""

from __future__ import annotations

import threading
import time
from typing import Any

import stripe

from tests.celery.conftest import API_KEY
from tests.fakes.stripe_server import FakeStripe, FakeStripeProcess

DELAY = 0.6
PARAMS = {
    "amount": 5000,
    "currency": "usd",
    "payment_method": "pm_card_visa",
    "off_session": True,
    "confirm": True,
}


def test_a_delayed_answer_creates_at_once_and_replays_under_the_same_key() -> None:
    with FakeStripe() as fake:
        client = stripe.StripeClient(
            API_KEY, base_addresses={"api": fake.url}, max_network_retries=0
        )
        fake.set_response_delay(DELAY, path="/v1/payment_intents", method="POST")
        answers: list[Any] = []
        started = time.monotonic()
        slow = threading.Thread(
            target=lambda: answers.append(
                client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "k"})
            )
        )
        slow.start()
        while not fake.objects("payment_intent"):
            assert time.monotonic() - started < DELAY, "the PaymentIntent was not created at once"
            time.sleep(0.01)

        # Meanwhile other requests are answered at once.
        customer = client.v1.customers.create(params={"email": "dev@example.com"})
        assert slow.is_alive()
        slow.join(timeout=5)
        assert time.monotonic() - started >= DELAY
        [intent] = answers
        assert intent.status == "succeeded"

        # The delay was for one answer; the same key gets the same PaymentIntent, at once.
        again = time.monotonic()
        replay = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "k"})
        assert time.monotonic() - again < DELAY
        assert replay.id == intent.id
        assert [i["id"] for i in fake.objects("payment_intent")] == [intent.id]
        assert [o["id"] for o in fake.objects("customer")] == [customer.id]
        assert [r["replayed"] for r in fake.received_requests()] == [False, False, True]


def test_the_delay_and_the_object_list_are_controls_of_the_fake_process() -> None:
    with FakeStripeProcess() as fake:
        client = stripe.StripeClient(
            API_KEY, base_addresses={"api": fake.url}, max_network_retries=0
        )
        fake.set_response_delay(DELAY, path="/v1/customers", method="POST", times=1)
        started = time.monotonic()
        first = client.v1.customers.create(params={"email": "dev@example.com"})
        assert time.monotonic() - started >= DELAY
        started = time.monotonic()
        second = client.v1.customers.create(params={"email": "dev@example.com"})
        assert time.monotonic() - started < DELAY
        assert [o["id"] for o in fake.objects("customer")] == [first.id, second.id]
        assert "pm_card_visa" in [o["id"] for o in fake.objects("payment_method")]
