"""Email to developers."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import User

logger = logging.getLogger(__name__)


def auto_recharge_failed_email(
    *, user: User, currency: str, reason: str, switched_off: bool
) -> None:
    """We could not charge the saved card: say why and what happens next. After commits only."""
    context = {
        "name": user.get_full_name() or user.email,
        "currency": currency,
        "reason": reason,
        "switched_off": switched_off,
        "link": settings.PORTAL_BASE_URL + reverse("my_balance"),
    }
    try:
        send_mail(
            f"[Developer portal] Auto-recharge of your {currency} balance failed",
            render_to_string("emails/billing/auto_recharge_failed.txt", context),
            settings.DEFAULT_FROM_EMAIL,
            [user.email],
        )
    except Exception:  # mail trouble must not undo the recorded failure
        logger.exception("Could not email %s about a failed auto-recharge", user.email)
