"""The email a developer gets when a plan's fee could not be paid from the prepaid wallet:
owed in the transaction that marked the subscription unpaid, sent once after its commit."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from billing.models import SentNotification, Subscription
from billing.notifications.once import (
    notification_send_once,
    notification_unsent,
    notifications_unsent,
)

# As for receipts: the sweep leaves young ones to their own task, and old ones alone.
SWEEP_WINDOW = timedelta(days=3)
SWEEP_DELAY = timedelta(minutes=5)


def fee_unpaid_key(transaction_id: str) -> str:
    return f"fee-unpaid:{transaction_id}"


def fee_unpaid_email(*, transaction_id: str) -> bool:
    """Tell the developer which fee is unpaid, what stops meanwhile and how to pay it; once.
    Not sent if the fee was paid before the email went out. A refused email raises, its claim
    given back for a retry."""
    key = fee_unpaid_key(transaction_id)
    public_id = transaction_id.split(":")[1]
    subscription = (
        Subscription.objects.select_related("billing_account__user", "rate_plan", "product")
        .filter(public_id=public_id)
        .first()
    )
    if subscription is None or subscription.unpaid_since is None:
        return False
    if not notification_unsent(key=key):
        return False
    user = subscription.billing_account.user
    plan = subscription.rate_plan
    context = {
        "name": user.get_full_name() or user.email,
        "product": subscription.product.display_name,
        "plan": plan.display_name,
        "fee": plan.recurring_fee,
        "currency": plan.currency,
        "add_credit": settings.PORTAL_BASE_URL + reverse("add_credit", args=[plan.currency]),
        "plans": settings.PORTAL_BASE_URL + reverse("my_plans"),
    }
    body = render_to_string("emails/billing/fee_unpaid.txt", context).strip() + "\n"
    subject = f"[Developer portal] Your {context['product']} plan fee is unpaid"

    def send() -> None:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])

    return notification_send_once(key=key, recipient=user.email, send=send)


def fee_unpaid_emails_unsent() -> list[str]:
    """Transaction ids of unpaid-fee emails whose task was lost, gave up or died."""
    now = timezone.now()
    owed = notifications_unsent(created_after=now - SWEEP_WINDOW, created_before=now - SWEEP_DELAY)
    return [ref for kind, ref in owed if kind == SentNotification.Kind.FEE_UNPAID]
