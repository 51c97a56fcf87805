"""The organisation's Add credit settings: limits per currency, the wait, the grace, who is told."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import User
from billing.audit import audit_log
from billing.events import emit_after_commit
from billing.exceptions import BillingError
from billing.locks import organization_settings_lock
from billing.models import TopUpLimit
from billing.top_ups.events import CurrencyWithdrawn


@transaction.atomic
def organization_top_up_settings_update(
    *,
    changed_by: User | None,
    top_up_wait_seconds: int,
    prepaid_grace_nanos: int,
    notification_email: str,
    limits: list[dict[str, Any]],
) -> None:
    """Save the Add credit settings; `limits` replaces the per-currency limits. Audited."""
    if top_up_wait_seconds < 0 or prepaid_grace_nanos < 0:
        raise BillingError("The wait and the grace cannot be negative.")
    currencies = [limit["currency"] for limit in limits]
    if len(set(currencies)) != len(currencies):
        raise BillingError("Each currency may have one set of limits only.")
    org = organization_settings_lock()
    before = {
        "top_up_wait_seconds": org.top_up_wait_seconds,
        "prepaid_grace_nanos": org.prepaid_grace_nanos,
        "notification_email": org.notification_email,
        "limits": list(TopUpLimit.objects.values("currency", "minimum", "maximum", "default")),
    }
    org.top_up_wait_seconds = top_up_wait_seconds
    org.prepaid_grace_nanos = prepaid_grace_nanos
    org.notification_email = notification_email
    org.save(update_fields=["top_up_wait_seconds", "prepaid_grace_nanos", "notification_email"])
    removed = list(
        TopUpLimit.objects.exclude(currency__in=currencies).values_list("currency", flat=True)
    )
    TopUpLimit.objects.exclude(currency__in=currencies).delete()
    for currency in removed:
        # After the commit, outside the settings row's lock (see billing/locks.py).
        emit_after_commit(CurrencyWithdrawn(currency))
    for limit in limits:
        TopUpLimit.objects.update_or_create(
            currency=limit["currency"],
            defaults={k: limit[k] for k in ("minimum", "maximum", "default")},
        )
    after = {
        "top_up_wait_seconds": top_up_wait_seconds,
        "prepaid_grace_nanos": prepaid_grace_nanos,
        "notification_email": notification_email,
        "limits": [
            {k: limit[k] for k in ("currency", "minimum", "maximum", "default")} for limit in limits
        ],
    }
    audit_log(
        actor=changed_by, action="organization.top_up_settings.set", before=before, after=after
    )
