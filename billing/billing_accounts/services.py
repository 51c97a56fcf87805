"""Writes of billing accounts and the organisation's settings row."""

from __future__ import annotations

from django.utils import timezone

from accounts.models import User
from billing.audit import audit_log
from billing.models import BillingAccount, OrganizationSettings, Wallet


def organization_settings_ensure() -> OrganizationSettings:
    """The settings row, made if it is missing: the ledger's statement joins it."""
    org, _ = OrganizationSettings.objects.get_or_create(pk=OrganizationSettings.SINGLETON_ID)
    return org


def billing_account_get_or_create(*, user: User) -> BillingAccount:
    account, _ = BillingAccount.objects.get_or_create(user=user)
    return account


BILLING_DETAILS = ("legal_company_name", "address", "country", "tax_id")


def billing_details_update(*, account: BillingAccount, **details: str) -> BillingAccount:
    """The details statements print (BILLING_DETAILS), as the developer gave them."""
    unknown = set(details) - set(BILLING_DETAILS)
    if unknown:
        raise TypeError(f"Not billing details: {sorted(unknown)}")
    for name, value in details.items():
        setattr(account, name, value)
    account.save(update_fields=list(details))
    return account


def organization_support_email_set(*, support_email: str, changed_by: User | None) -> bool:
    """Set where developers write for help; True if it changed. Audited."""
    org = organization_settings_ensure()
    if org.support_email == support_email:
        return False
    old = org.support_email
    OrganizationSettings.objects.filter(pk=org.pk).update(support_email=support_email)
    audit_log(actor=changed_by, action="organization.support_email.set", old=old, new=support_email)
    return True


def organization_statement_settings_set(
    *, balance_alert_percents: str, billing_history_months: int, changed_by: User | None
) -> bool:
    """The low-balance alert percentages ("50,20,5") and the months of statements developers
    can download; True if they changed. Audited. New percentages disarm every wallet's alert,
    so that send_balance_alerts arms each at the new thresholds."""
    org = organization_settings_ensure()
    old = (org.balance_alert_percents, org.billing_history_months)
    if old == (balance_alert_percents, billing_history_months):
        return False
    OrganizationSettings.objects.filter(pk=org.pk).update(
        balance_alert_percents=balance_alert_percents,
        billing_history_months=billing_history_months,
        updated_at=timezone.now(),
    )
    if old[0] != balance_alert_percents:
        Wallet.objects.filter(alert_at__isnull=False).update(alert_at=None)
    audit_log(
        actor=changed_by,
        action="organization.statement_settings.set",
        old={"balance_alert_percents": old[0], "billing_history_months": old[1]},
        new={
            "balance_alert_percents": balance_alert_percents,
            "billing_history_months": billing_history_months,
        },
    )
    return True


def organization_purchase_terms_set(*, purchase_terms: str, changed_by: User | None) -> bool:
    """Set the terms a developer accepts with every purchase (empty: none); True if they
    changed. Audited, with the old and new text."""
    org = organization_settings_ensure()
    if org.purchase_terms == purchase_terms:
        return False
    old = org.purchase_terms
    OrganizationSettings.objects.filter(pk=org.pk).update(
        purchase_terms=purchase_terms, updated_at=timezone.now()
    )
    audit_log(
        actor=changed_by, action="organization.purchase_terms.set", old=old, new=purchase_terms
    )
    return True
