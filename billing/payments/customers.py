"""One Stripe customer per billing account."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import stripe

from billing.models import BillingAccount
from billing.payments import stripe_gateway

logger = logging.getLogger(__name__)
T = TypeVar("T")


def stripe_customer_ensure(account: BillingAccount, *, for_page: bool = False) -> str:
    """One Stripe customer per billing account, created on first payment. `for_page`: a
    developer's page waits for it (stripe_gateway.PAGE_TIMEOUT_SECONDS)."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer_id = stripe_gateway.customer_create(account=account, for_page=for_page)
    # Compare-and-set: if another request stored one meanwhile, keep the first.
    BillingAccount.objects.filter(pk=account.pk, stripe_customer_id="").update(
        stripe_customer_id=customer_id
    )
    account.refresh_from_db(fields=["stripe_customer_id"])
    return account.stripe_customer_id


def stripe_customer_call(account: BillingAccount, call: Callable[[str], T]) -> T:
    """Run a page's Stripe call for the account's customer. A customer Stripe no longer knows
    (deleted in its dashboard, or made with test keys before the switch to live ones) refused
    every payment page for good: it is replaced once and the call made again."""
    customer_id = stripe_customer_ensure(account, for_page=True)
    try:
        return call(customer_id)
    except stripe.InvalidRequestError as exc:
        if not stripe_gateway.customer_missing(exc):
            raise
        logger.warning("Stripe no longer knows customer %s of account %s", customer_id, account.pk)
        return call(_stripe_customer_replace(account, missing=customer_id))


def _stripe_customer_replace(account: BillingAccount, *, missing: str) -> str:
    replacement = stripe_gateway.customer_create(account=account, for_page=True)
    # Compare-and-set: of two pages replacing at once, both use the customer stored first. The
    # saved card belonged to the lost customer: Stripe would refuse it for the new one, so
    # auto-recharge would fail and switch off. The developer saves a card again.
    BillingAccount.objects.filter(pk=account.pk, stripe_customer_id=missing).update(
        stripe_customer_id=replacement, stripe_payment_method_id="", card_brand="", card_last4=""
    )
    account.refresh_from_db(fields=["stripe_customer_id"])
    return account.stripe_customer_id
