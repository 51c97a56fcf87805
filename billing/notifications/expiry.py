"""The warning that credit is about to expire (30, 7 and 1 days before), sent once per wallet,
day and stage: owed by billing/expiry/services.py, sent here after the commit."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Sum
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from billing.models import CreditLot, SentNotification, Wallet
from billing.money import Money, money_format
from billing.notifications.once import notification_send_once, notifications_unsent


def credit_expiry_email(*, key: str) -> bool:
    """Email the warning owed under `key` ("credit-expiry:<wallet>:<YYYY-MM-DD>:<days>d"):
    the wallet's credit left that expires that day (UTC), once. Not sent when it has been
    spent or has expired meanwhile."""
    _, wallet_id, day_text, _days = key.split(":")
    day = date.fromisoformat(day_text)
    start = datetime.combine(day, time.min, tzinfo=UTC)
    lots = CreditLot.objects.filter(
        wallet_id=int(wallet_id),
        expired_at__isnull=True,
        expires_at__gte=start,
        expires_at__lt=start + timedelta(days=1),
    )
    left = lots.aggregate(total=Sum("remaining"))["total"] or 0
    wallet = Wallet.objects.select_related("billing_account__user").filter(pk=wallet_id).first()
    if wallet is None or left <= 0:
        return False
    user = wallet.billing_account.user
    currency = wallet.currency
    expires_at = lots.order_by("expires_at").values_list("expires_at", flat=True).first()
    context = {
        "name": user.get_full_name() or user.email,
        "left": money_format(Money(left, currency)),
        "expires_at": expires_at,
        "balance_url": settings.PORTAL_BASE_URL + reverse("my_balance"),
        "currency": currency,
    }
    body = render_to_string("emails/billing/credit_expiry.txt", context).strip() + "\n"
    subject = (
        f"[Developer portal] {context['left']} of your {currency} credit expires on {day:%-d %b %Y}"
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
