"""Add credit with Stripe Checkout (or the offline test page): start, cancel, expire."""

from __future__ import annotations

import logging

import stripe
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from billing.exceptions import BillingError
from billing.locks import top_up_limits_lock
from billing.models import BillingAccount, TopUp
from billing.models.state import transition
from billing.money import Money
from billing.payments import stripe_gateway
from billing.payments.customers import stripe_customer_call
from billing.top_ups.limits import TopUpRefused, top_up_check

logger = logging.getLogger(__name__)
State = TopUp.State


class TopUpNotCancelled(BillingError):
    """The payment page could not be closed (it was paid, or Stripe did not answer)."""


def top_up_start(*, account: BillingAccount, money: Money, base_url: str) -> TopUp:
    """Check the limits, record a pending top-up and open a payment page for it.

    The checks and the insert share a lock on the billing account, so two tabs cannot both
    pass the wait or the monthly cap. Stripe is called after the commit.
    """
    with transaction.atomic():
        top_up_limits_lock(account=account)
        top_up_check(account=account, money=money)
        top_up = TopUp.objects.create(
            billing_account=account, currency=money.currency, amount=money.nanos
        )
    status_url = base_url + reverse("top_up_status", args=[top_up.public_id])
    cancel_url = base_url + reverse("top_up_cancel", args=[top_up.public_id])
    if not stripe_gateway.stripe_enabled():
        session_id = f"cs_offline_{top_up.public_id.hex}"
        url = base_url + reverse("test_payment", args=[top_up.public_id])
    else:
        try:
            session_id, url = stripe_customer_call(
                account,
                lambda customer_id: stripe_gateway.checkout_session_create(
                    top_up=top_up,
                    customer_id=customer_id,
                    success_url=status_url,
                    cancel_url=cancel_url,
                ),
            )
        except stripe.StripeError as exc:
            logger.warning("Checkout Session for top-up %s failed: %s", top_up.public_id, exc)
            transition(top_up, State.FAILED, failure_reason="The payment page could not be opened.")
            raise TopUpRefused(
                "The payment page could not be opened. Nothing was charged; try again in a minute."
            ) from exc
    TopUp.objects.filter(pk=top_up.pk).update(
        stripe_checkout_session_id=session_id, checkout_url=url
    )
    top_up.stripe_checkout_session_id, top_up.checkout_url = session_id, url
    return top_up


def top_up_open(*, account: BillingAccount, currency: str) -> TopUp | None:
    """The developer's latest payment page in this currency that can still be paid."""
    since = timezone.now() - stripe_gateway.CHECKOUT_LIFETIME
    return (
        TopUp.objects.filter(
            billing_account=account,
            currency=currency,
            state=State.PENDING,
            created_at__gte=since,
            stripe_payment_intent_id__isnull=True,  # paid, waiting for its confirmation
        )
        .exclude(checkout_url="")
        .order_by("-created_at")
        .first()
    )


def top_up_cancel(*, top_up: TopUp) -> bool:
    """Cancel a pending top-up, closing its payment page first: a cancelled top-up stops
    counting against the monthly cap and the wait, so its page must not stay payable.
    False if there was nothing to cancel; TopUpNotCancelled if the page could not be closed."""
    if top_up.state != State.PENDING:
        return False
    session_id = stripe_page(top_up)
    if session_id:
        try:
            status = stripe_gateway.checkout_session_close(session_id)
        except stripe.StripeError as exc:
            logger.warning("Closing Checkout for top-up %s failed: %s", top_up.public_id, exc)
            raise TopUpNotCancelled(
                "Stripe could not be reached to close the payment page, so the top-up is "
                "not cancelled yet. Try again in a minute."
            ) from exc
        if status == "complete":
            raise TopUpNotCancelled(
                "This top-up was already paid on the payment page, so it cannot be cancelled. "
                "The credit appears on your balance once Stripe confirms it."
            )
        if status != "expired":
            raise TopUpNotCancelled("The payment page is still open; try again in a minute.")
        return transition(top_up, State.CANCELED, failure_reason=CANCELLED)
    return _cancel_unless_paid_offline(top_up)


CANCELLED = "Cancelled on the payment page."


def _cancel_unless_paid_offline(top_up: TopUp) -> bool:
    """Offline, Pay on the test page links the PaymentIntent (top_up_pay_offline): one
    conditional UPDATE each, so of a Pay and a cancel at the same moment exactly one wins."""
    unpaid = Q(stripe_payment_intent_id__isnull=True)
    if transition(top_up, State.CANCELED, where=unpaid, failure_reason=CANCELLED):
        return True
    if TopUp.objects.filter(pk=top_up.pk, state=State.PENDING).exists():
        raise TopUpNotCancelled(
            "This top-up was already paid on the test payment page, so it cannot be cancelled. "
            "The credit appears on your balance in a moment."
        )
    return False


def top_up_pay_offline(*, top_up: TopUp, payment_intent_id: str) -> bool:
    """Pay pressed on the offline test page: False if the top-up was cancelled (or finished)
    meanwhile, so that no payment event is sent for it."""
    return bool(
        TopUp.objects.filter(pk=top_up.pk, state=State.PENDING)
        .filter(
            Q(stripe_payment_intent_id__isnull=True)
            | Q(stripe_payment_intent_id=payment_intent_id)  # a second click on Pay
        )
        .update(stripe_payment_intent_id=payment_intent_id)
    )


def stripe_page(top_up: TopUp) -> str | None:
    """The top-up's Checkout Session on Stripe, if it has one (not the offline test page)."""
    session_id = top_up.stripe_checkout_session_id or ""
    on_stripe = session_id.startswith("cs_") and not session_id.startswith("cs_offline_")
    return session_id if on_stripe and stripe_gateway.stripe_enabled() else None


def top_up_expire(*, top_up: TopUp) -> bool:
    """The payment page expired unpaid (Stripe's event, or the offline page after
    CHECKOUT_LIFETIME). Only a pending top-up changes."""
    return transition(
        top_up, State.CANCELED, failure_reason="The payment page expired before payment."
    )


def top_up_expire_stale_offline(*, top_up: TopUp) -> bool:
    """The offline test-payment page expires after the same lifetime as Stripe's."""
    if top_up.created_at > timezone.now() - stripe_gateway.CHECKOUT_LIFETIME:
        return False
    return top_up_expire(top_up=top_up)
