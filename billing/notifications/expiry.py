"""The warning that credit is about to expire (30, 7 and 1 days before), sent once per lot and
stage: owed by billing/expiry/services.py, sent here after the commit."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from billing.models import CreditLot, SentNotification
from billing.money import money_format
from billing.notifications.once import notification_send_once, notifications_unsent


def credit_expiry_email(*, key: str) -> bool:
    """Email the warning owed under `key` ("credit-expiry:<lot>:<days>d"), once. Not sent when
    the lot has been spent or has expired meanwhile."""
    lot_id = int(key.split(":")[1])
    lot = (
        CreditLot.objects.select_related("wallet__billing_account__user").filter(pk=lot_id).first()
    )
    if lot is None or lot.expired_at is not None or lot.remaining <= 0:
        return False
    user = lot.wallet.billing_account.user
    currency = lot.wallet.currency
    context = {
        "name": user.get_full_name() or user.email,
        "left": money_format(lot.remaining_money),
        "credited": money_format(lot.amount_money),
        "credited_on": lot.created_at,
        "expires_at": lot.expires_at,
        "balance_url": settings.PORTAL_BASE_URL + reverse("my_balance"),
        "currency": currency,
    }
    body = render_to_string("emails/billing/credit_expiry.txt", context).strip() + "\n"
    subject = (
        f"[Developer portal] {context['left']} of your {currency} credit expires on "
        f"{lot.expires_at:%-d %b %Y}"
    )

    def send() -> None:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])

    return notification_send_once(key=key, recipient=user.email, send=send)


def credit_expiry_emails_unsent() -> list[str]:
    """Warnings owed and free to send (their task lost, gave up or died), from the last 3
    days, leaving the last 5 minutes' to their own task."""
    now = timezone.now()
    owed = notifications_unsent(
        created_after=now - timedelta(days=3), created_before=now - timedelta(minutes=5)
    )
    return [ref for kind, ref in owed if kind == SentNotification.Kind.CREDIT_EXPIRY]
