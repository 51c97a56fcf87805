"""Reads of billing accounts and the organisation's settings."""

from __future__ import annotations

from billing.models import BillingAccount, OrganizationSettings


def organization_settings_get() -> OrganizationSettings:
    """The organisation's settings. A pure read: a data migration makes the row; should it be
    missing (a test database flushed), the defaults apply until a write saves them."""
    return OrganizationSettings.objects.filter(
        pk=OrganizationSettings.SINGLETON_ID
    ).first() or OrganizationSettings(pk=OrganizationSettings.SINGLETON_ID)


def billing_type_effective(*, account: BillingAccount, default: str | None = None) -> str:
    """The developer's own billing type, else the organisation's default (read if not given)."""
    return account.billing_type or default or organization_settings_get().default_billing_type
