"""The offline payment simulator's half of Stripe: events shaped like Stripe's, signed with the
local webhook secret using Stripe's own scheme, so they pass the real verification."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction

from billing.models import BillingAccount, TopUp
from billing.money import money_to_stripe
from billing.payments import stripe_gateway
from billing.payments.events import OfflineChargeSucceeded
from billing.tasks import offline_event_deliver
from billing.webhooks.receive import webhook_receive


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header: t=<unix time>,v1=<HMAC-SHA256 of "t.payload">."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _event(event_type: str, obj: dict[str, Any]) -> tuple[bytes, str]:
    """A Stripe event envelope around `obj`, and its signature."""
    event = {
        "id": f"evt_offline_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": obj},
    }
    payload = json.dumps(event).encode()
    return payload, sign(payload, stripe_gateway.webhook_secret())


def offline_payment_intent_id(top_up: TopUp) -> str:
    # One top-up, one PaymentIntent, as on Stripe: a double click on Pay is the same payment.
    return f"pi_offline_{top_up.public_id.hex[:24]}"


def offline_checkout_event(*, top_up: TopUp, paid: bool) -> tuple[bytes, str]:
    amount = money_to_stripe(top_up.money)
    metadata = {"top_up_id": str(top_up.public_id)}
    payment_intent_id = offline_payment_intent_id(top_up)
    if paid:
        return _event(
            "checkout.session.completed",
            {
                "id": top_up.stripe_checkout_session_id,
                "object": "checkout.session",
                "mode": "payment",
                "payment_status": "paid",
                "status": "complete",
                "amount_total": amount,
                "currency": top_up.currency.lower(),
                "payment_intent": payment_intent_id,
                "metadata": metadata,
            },
        )
    return _event(
        "payment_intent.payment_failed",
        {
            "id": payment_intent_id,
            "object": "payment_intent",
            "amount": amount,
            "currency": top_up.currency.lower(),
            "status": "requires_payment_method",
            "metadata": metadata,
            "last_payment_error": {
                "code": "card_declined",
                "message": "Your card was declined (test payment).",
            },
        },
    )


OFFLINE_DELIVERY_DELAY = 1.5  # seconds: like Stripe, the webhook lands after the redirect


def offline_event_deliver_later(
    *, payload: bytes, signature: str, delay: float = OFFLINE_DELIVERY_DELAY
) -> None:
    """Send the signed event to the webhook handler shortly after the response, as Stripe
    does, so the status page is seen pending first. A worker does it when Celery has a broker;
    in-process mode uses a short-lived thread. With no delay it is sent after the commit."""
    if not delay:
        transaction.on_commit(lambda: webhook_receive(payload=payload, signature=signature))
        return
    text = payload.decode()
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        offline_event_deliver.apply_async((text, signature), countdown=delay)
        return
    timer = threading.Timer(delay, offline_event_deliver, (text, signature))
    timer.daemon = True
    timer.start()


def offline_setup_event(*, account: BillingAccount, payment_method_id: str) -> tuple[bytes, str]:
    """A setup-mode `checkout.session.completed` for one of the offline test cards."""
    return _event(
        "checkout.session.completed",
        {
            "id": f"cs_offline_setup_{uuid.uuid4().hex[:16]}",
            "object": "checkout.session",
            "mode": "setup",
            "status": "complete",
            "setup_intent": f"seti_for_{payment_method_id}",
            "metadata": {"billing_account_id": str(account.pk)},
        },
    )


def offline_payment_intent_event(*, charge: OfflineChargeSucceeded) -> tuple[bytes, str]:
    return _event(
        "payment_intent.succeeded",
        {
            "id": charge.payment_intent_id,
            "object": "payment_intent",
            "status": "succeeded",
            "amount": charge.amount,
            "amount_received": charge.amount,
            "currency": charge.currency,
            "metadata": charge.metadata,
        },
    )


def deliver_payment_intent_succeeded(charge: OfflineChargeSucceeded) -> None:
    """Offline, Stripe's `payment_intent.succeeded` webhook follows an off-session charge, as it
    would online. A reaction (billing/reactions.py): it runs after the charge's commit, and
    nobody watches a page for it, so it is delivered at once, without a thread."""
    payload, signature = offline_payment_intent_event(charge=charge)
    offline_event_deliver_later(payload=payload, signature=signature, delay=0)
