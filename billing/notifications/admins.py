"""Email to the organisation's admins."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import mail_admins, send_mail
from django.db.models import Q
from django.template.loader import render_to_string

from accounts.models import User
from billing.billing_accounts.selectors import organization_settings_get

logger = logging.getLogger(__name__)


def notify_admins(subject: str, message: str) -> bool:
    """Email the organisation's notification address, else Django's ADMINS, else everyone who
    may read the Add credit log: out of the box somebody hears of it. After commits only.
    False if the mail server refused it."""
    try:
        if settings.ADMINS and not organization_settings_get().notification_email:
            mail_admins(subject, message)
            return True
        recipients = _notification_recipients()
        if recipients:
            send_mail(
                f"[Developer portal] {subject}", message, settings.DEFAULT_FROM_EMAIL, recipients
            )
        else:
            logger.error("Nobody to email about: %s. %s", subject, message)
    except Exception:  # an unreachable mail server must not turn a handled event into a failure
        logger.exception("Could not email the administrators: %s", subject)
        return False
    return True


def _notification_recipients() -> list[str]:
    configured = organization_settings_get().notification_email
    if configured:
        return [configured]
    may_read_the_log = Q(
        user_permissions__codename="view_add_credit_log",
        user_permissions__content_type__app_label="billing",
    ) | Q(
        groups__permissions__codename="view_add_credit_log",
        groups__permissions__content_type__app_label="billing",
    )
    users = User.objects.filter(Q(is_superuser=True) | may_read_the_log, is_active=True)
    return sorted(set(users.values_list("email", flat=True)))


def _notify_admins_of(subject: str, template: str, **context: object) -> bool:
    return notify_admins(subject, render_to_string(f"emails/billing/{template}", context).strip())


def stripe_event_failed(*, event_id: str, event_type: str, error: Exception) -> bool:
    return _notify_admins_of(
        f"Crediting failed for Stripe event {event_id}",
        "stripe_event_failed.txt",
        event_type=event_type,
        error=repr(error),
    )


def stripe_event_set_aside(*, event_id: str, event_type: str, reason: str, waited: object) -> bool:
    return _notify_admins_of(
        f"A Stripe {event_type} the portal cannot place",
        "stripe_event_set_aside.txt",
        event_id=event_id,
        reason=reason,
        waited=waited,
    )


def top_up_flagged(*, top_up_public_id: object, reason: str) -> bool:
    return _notify_admins_of(
        f"Top-up {top_up_public_id} needs a look", "top_up_flagged.txt", reason=reason
    )


def auto_recharge_stopped(*, email: str, currency: str, reason: str) -> bool:
    return _notify_admins_of(
        f"Auto-recharge stopped for {email}",
        "auto_recharge_stopped.txt",
        currency=currency,
        reason=reason,
    )
