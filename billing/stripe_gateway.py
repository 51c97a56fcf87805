"""Every call to Stripe goes through here, outside database transactions. Without
STRIPE_SECRET_KEY the portal runs offline: no call is made and the test-payment page stands in
for Stripe Checkout, signing its events with a local webhook secret."""

from __future__ import annotations

import hashlib
from typing import Any

import stripe
from django.conf import settings

from billing.models import BillingAccount, TopUp
from billing.money import Money, money_to_stripe

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


def stripe_client() -> stripe.StripeClient:
    base = settings.STRIPE_API_BASE
    bases: Any = {"api": base, "files": base, "connect": base} if base else None
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=bases,
        # Retries reuse the same idempotency key, so a retried create never doubles.
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
    )


def customer_create(*, account: BillingAccount) -> str:
    customer = stripe_client().v1.customers.create(
        params={
            "email": account.user.email,
            "name": account.legal_company_name
            or account.user.get_full_name()
            or account.user.email,
            "metadata": {"billing_account_id": str(account.pk)},
        },
        options={"idempotency_key": f"billing-account-{account.pk}-customer"},
    )
    return customer.id


def checkout_session_create(
    *, top_up: TopUp, customer_id: str, success_url: str, cancel_url: str
) -> tuple[str, str]:
    """A Checkout Session in payment mode for exactly this top-up; returns (id, url)."""
    metadata = {"top_up_id": str(top_up.public_id)}
    session = stripe_client().v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer": customer_id,
            "client_reference_id": str(top_up.public_id),
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": top_up.currency.lower(),
                        "unit_amount": money_to_stripe(Money(top_up.amount, top_up.currency)),
                        "product_data": {"name": "Prepaid balance top-up"},
                    },
                }
            ],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "success_url": success_url,
            "cancel_url": cancel_url,
        },
        options={"idempotency_key": f"top-up-{top_up.public_id}-checkout"},
    )
    return session.id, session.url
