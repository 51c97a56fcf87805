"""The saved card that auto-recharge charges: Stripe holds it; we keep its id, brand and last
four."""

from __future__ import annotations

import logging

import stripe
from django.urls import reverse

from billing.audit import audit_log
from billing.exceptions import BillingError
from billing.models import BillingAccount
from billing.payments import stripe_gateway
from billing.payments.customers import stripe_customer_call

logger = logging.getLogger(__name__)


def card_save(*, account: BillingAccount, payment_method_id: str, brand: str, last4: str) -> None:
    BillingAccount.objects.filter(pk=account.pk).update(
        stripe_payment_method_id=payment_method_id, card_brand=brand[:20], card_last4=last4[:4]
    )
    audit_log(
        actor=account.user, action="card.save", target_user=account.user, brand=brand, last4=last4
    )


def card_save_from_setup_intent(*, account_id: int, setup_intent_id: str) -> None:
    """After a setup-mode Checkout: ask Stripe which card was saved (outside transactions)."""
    payment_method_id, brand, last4 = stripe_gateway.card_from_setup_intent(setup_intent_id)
    account = BillingAccount.objects.select_related("user").get(pk=account_id)
    card_save(account=account, payment_method_id=payment_method_id, brand=brand, last4=last4)


def card_setup_start(*, account: BillingAccount, base_url: str) -> str:
    """Open Stripe Checkout in setup mode for this account; returns the page's URL."""
    try:
        _, url = stripe_customer_call(
            account,
            lambda customer_id: stripe_gateway.setup_session_create(
                customer_id=customer_id,
                success_url=base_url + reverse("card_saved"),
                cancel_url=base_url + reverse("my_balance"),
                billing_account_id=account.pk,
            ),
        )
    except stripe.StripeError as exc:
        logger.warning("Setup session for account %s failed: %s", account.pk, exc)
        raise BillingError("Stripe's page could not be opened. Try again in a minute.") from exc
    return url
