"""Every call to Stripe goes through here, outside database transactions. Without
STRIPE_SECRET_KEY the portal runs offline: no call is made and the test-payment page stands in
for Stripe Checkout, signing its events with a local webhook secret."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

import stripe
from django.conf import settings

from billing.events import emit_after_commit
from billing.models import BillingAccount, TopUp
from billing.money import Money, money_to_stripe
from billing.payments.events import OfflineChargeSucceeded
from billing.payments.offline_cards import (
    OFFLINE_CARDS,
    offline_card_behaviour,
    offline_charge_intent_id,
)

logger = logging.getLogger(__name__)

# How long a payment page can be paid. Stripe allows 30 minutes to 24 hours.
CHECKOUT_LIFETIME = timedelta(hours=1)

# The library would otherwise write a telemetry id under $HOME on first use.
stripe.enable_telemetry = False


def stripe_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def webhook_secret() -> str:
    """The configured secret, or offline a stable one derived from the Django secret key."""
    if settings.STRIPE_WEBHOOK_SECRET:
        return settings.STRIPE_WEBHOOK_SECRET
    digest = hashlib.sha256(f"offline-webhook:{settings.SECRET_KEY}".encode()).hexdigest()
    return f"whsec_offline_{digest[:32]}"


# A developer's page waits for these calls (Add credit, Cancel, Save card). The library waits
# 80 s per try, so a Stripe that does not answer outlasted the web server's worker timeout (30 s
# for gunicorn): the worker was killed, the developer got no page and a top-up was left pending.
# Each try now gives up after PAGE_TIMEOUT_SECONDS, with at most PAGE_MAX_RETRIES retries, so that
# even two calls (customer, then page) end within that time and the page says what happened.
PAGE_TIMEOUT_SECONDS = 6
PAGE_MAX_RETRIES = 1


def stripe_client(*, for_page: bool = False) -> stripe.StripeClient:
    base = settings.STRIPE_API_BASE
    bases: Any = {"api": base, "files": base, "connect": base} if base else None
    retries = settings.STRIPE_MAX_NETWORK_RETRIES
    http_client = None
    if for_page:
        retries = min(retries, PAGE_MAX_RETRIES)
        http_client = stripe.new_default_http_client(timeout=PAGE_TIMEOUT_SECONDS)
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=bases,
        # Retries reuse the same idempotency key, so a retried create never doubles.
        max_network_retries=retries,
        http_client=http_client,
    )


# Stripe refuses a longer Customer name; first and last name may add up to 301 characters.
CUSTOMER_NAME_MAX = 256


def customer_create(*, account: BillingAccount, for_page: bool = False) -> str:
    name = account.legal_company_name or account.user.get_full_name() or account.user.email
    customer = stripe_client(for_page=for_page).v1.customers.create(
        params={
            "email": account.user.email,
            "name": name[:CUSTOMER_NAME_MAX],
            "metadata": {"billing_account_id": str(account.pk)},
        },
        # No key of ours: the library's own random key covers its network retries. A key made
        # from the account id made a second portal on the same Stripe account (or a restored
        # database) get another developer's customer, or Stripe's idempotency_error for 24 h
        # after a name change. A lost answer costs at most an unused customer.
    )
    return customer.id


def customer_missing(exc: stripe.StripeError) -> bool:
    """Stripe refused a request because the customer it names does not exist (there)."""
    return (
        isinstance(exc, stripe.InvalidRequestError)
        and exc.code == "resource_missing"
        and exc.param == "customer"
    )


def checkout_session_create(
    *, top_up: TopUp, customer_id: str, success_url: str, cancel_url: str
) -> tuple[str, str]:
    """A Checkout Session in payment mode for exactly this top-up; returns (id, url)."""
    metadata = {"top_up_id": str(top_up.public_id)}
    session = stripe_client(for_page=True).v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer": customer_id,
            "client_reference_id": str(top_up.public_id),
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": top_up.currency.lower(),
                        "unit_amount": money_to_stripe(top_up.money),
                        "product_data": {"name": "Prepaid balance top-up"},
                    },
                }
            ],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "success_url": success_url,
            "cancel_url": cancel_url,
            # Short-lived, so that an abandoned page cannot be paid long after it stopped
            # counting against the developer's limits.
            "expires_at": int(top_up.created_at.timestamp() + CHECKOUT_LIFETIME.total_seconds()),
        },
        # Per top-up and customer: Stripe keeps a refusal for a customer it no longer knows
        # under the key, and the same key with the replacement customer would be refused as
        # other parameters (idempotency_error), so the replaced customer's page never opened.
        options={"idempotency_key": f"top-up-{top_up.public_id}-checkout-{customer_id}"},
    )
    return session.id, _page_url(session.url)


def checkout_session_close(session_id: str) -> str:
    """Expire an open Checkout Session so that it can no longer be paid. Returns the session's
    final status: "expired", or "complete" when it was paid first."""
    client = stripe_client(for_page=True)
    try:
        return str(client.v1.checkout.sessions.expire(session_id).status)
    except stripe.InvalidRequestError:
        # Stripe refuses to expire a session that is no longer open: ask what it became.
        return str(client.v1.checkout.sessions.retrieve(session_id).status)


# ---- Saved cards and off-session charges (auto-recharge) ----


@dataclass(frozen=True)
class ChargeResult:
    payment_intent_id: str
    status: str  # Stripe's PaymentIntent status, e.g. "succeeded", "processing"
    amount: int  # minor units actually received (or asked, while processing)
    currency: str


class CardDeclined(Exception):
    """The card was declined or needs the cardholder: ends the attempt, no retry."""

    def __init__(self, message: str, code: str, payment_intent_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.payment_intent_id = payment_intent_id


def setup_session_create(
    *, customer_id: str, success_url: str, cancel_url: str, billing_account_id: int
) -> tuple[str, str]:
    """A Checkout Session in setup mode: the developer saves a card on Stripe's page."""
    params: Any = {
        "mode": "setup",
        "customer": customer_id,
        "payment_method_types": ["card"],
        "metadata": {"billing_account_id": str(billing_account_id)},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    session = stripe_client(for_page=True).v1.checkout.sessions.create(params=params)
    return session.id, _page_url(session.url)


def _page_url(url: str | None) -> str:
    if not url:  # Stripe always sends one for hosted Checkout; without it nobody could pay
        raise stripe.APIError("Stripe returned a Checkout Session without a page URL.")
    return url


def card_from_setup_intent(setup_intent_id: str) -> tuple[str, str, str]:
    """(payment method id, brand, last four) of the card a SetupIntent saved."""
    if not stripe_enabled():
        offline_card = setup_intent_id.removeprefix("seti_for_")
        brand, last4, _ = OFFLINE_CARDS[offline_card]
        return offline_card, brand, last4
    client = stripe_client()
    intent = client.v1.setup_intents.retrieve(setup_intent_id)
    method = intent.payment_method
    payment_method_id = method if isinstance(method, str) else getattr(method, "id", None)
    if not payment_method_id:
        raise stripe.APIError(f"SetupIntent {setup_intent_id} saved no payment method.")
    card = client.v1.payment_methods.retrieve(payment_method_id).card
    if card is None:
        raise stripe.APIError(f"Payment method {payment_method_id} is not a card.")
    return payment_method_id, card.brand, card.last4


def off_session_charge(
    *,
    customer_id: str,
    payment_method_id: str,
    money: Money,
    metadata: dict[str, str],
    idempotency_key: str,
) -> ChargeResult:
    """Charge a saved card without the developer present. The idempotency key makes a retry,
    or a second worker with the same attempt, return the same PaymentIntent: one charge."""
    amount = money_to_stripe(money)
    if not stripe_enabled():
        result = _offline_charge(payment_method_id, amount, money.currency, idempotency_key)
        emit_after_commit(
            OfflineChargeSucceeded(
                result.payment_intent_id, result.amount, result.currency, metadata
            )
        )
        return result
    try:
        intent = stripe_client().v1.payment_intents.create(
            params={
                "amount": amount,
                "currency": money.currency.lower(),
                "customer": customer_id,
                "payment_method": payment_method_id,
                "off_session": True,
                "confirm": True,
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
    except stripe.CardError as exc:
        error = exc.error
        intent_id = ""
        failed_intent = getattr(error, "payment_intent", None)
        if failed_intent is not None:
            intent_id = failed_intent.id
        raise CardDeclined(
            exc.user_message or "The card was declined.", exc.code or "", intent_id
        ) from exc
    return ChargeResult(
        intent.id, intent.status, intent.amount_received or intent.amount, intent.currency
    )


def error_was_saved(exc: stripe.StripeError) -> bool:
    """Stripe saved this error under the idempotency key (the answer says it replayed one, or
    the key was first used with other parameters): retrying with that key cannot change it."""
    if isinstance(exc, stripe.IdempotencyError):
        return exc.http_status == 400  # a 409 is the same key still running elsewhere: transient
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    return headers.get("idempotent-replayed") == "true"


def payment_intent_for_attempt(
    *, customer_id: str, attempt_id: int, top_up_id: str = ""
) -> ChargeResult | None:
    """The PaymentIntent that a recharge attempt created, if any (by its metadata), among the
    customer's most recent ones: after a saved error the key no longer tells. By the attempt's
    top-up (a UUID) where it has one: attempt ids come round again after a database restore."""
    if not stripe_enabled():
        return None
    intents = stripe_client().v1.payment_intents.list(params={"customer": customer_id, "limit": 20})
    key, wanted = (
        ("top_up_id", top_up_id) if top_up_id else ("recharge_attempt_id", str(attempt_id))
    )
    for intent in intents.data:
        metadata: Any = intent.metadata or {}
        if key in metadata and metadata[key] == wanted:
            return ChargeResult(
                intent.id, intent.status, intent.amount_received or intent.amount, intent.currency
            )
    return None


class PaymentCard(NamedTuple):
    brand: str  # Stripe's word, e.g. "visa"
    last4: str  # empty when there is no card number to show


# Offline, the test payment page stands in for Checkout: no card is charged.
OFFLINE_TEST_CARD = PaymentCard("test card", "")


def payment_intent_card(payment_intent_id: str) -> PaymentCard | None:
    """The card that paid a PaymentIntent, from its latest charge, for a receipt. None when
    Stripe cannot tell (not a card, or no answer): a receipt never waits for its card."""
    if not stripe_enabled():
        return OFFLINE_TEST_CARD
    try:
        # A page's short timeouts: a worker sending receipts is not held for minutes.
        intent = stripe_client(for_page=True).v1.payment_intents.retrieve(
            payment_intent_id, params={"expand": ["latest_charge"]}
        )
    except stripe.StripeError as exc:
        logger.warning("Could not ask Stripe for the card of %s: %s", payment_intent_id, exc)
        return None
    charge = intent.latest_charge
    details = None if isinstance(charge, str) else getattr(charge, "payment_method_details", None)
    card = getattr(details, "card", None)
    if card is None or not card.last4:
        return None
    return PaymentCard(card.brand or "card", card.last4)


def _offline_charge(payment_method_id: str, amount: int, currency: str, key: str) -> ChargeResult:
    behaviour = offline_card_behaviour(payment_method_id)
    intent_id = offline_charge_intent_id(key)
    if behaviour == "card_declined":
        raise CardDeclined("Your card was declined (test card).", "card_declined", intent_id)
    if behaviour == "authentication_required":
        raise CardDeclined(
            "Your bank asks you to confirm this payment (test card).",
            "authentication_required",
            intent_id,
        )
    return ChargeResult(intent_id, "succeeded", amount, currency.lower())
