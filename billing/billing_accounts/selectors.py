"""Reads of billing accounts and the organisation's settings."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from accounts.models import User
from billing.models import BillingAccount, OrganizationSettings
from billing.sql import fetch_one, instance_from_row, model_columns


def organization_settings_get() -> OrganizationSettings:
    """The organisation's settings. A pure read: a data migration makes the row; should it be
    missing (a test database flushed), the defaults apply until a write saves them."""
    return OrganizationSettings.objects.filter(
        pk=OrganizationSettings.SINGLETON_ID
    ).first() or OrganizationSettings(pk=OrganizationSettings.SINGLETON_ID)


def billing_type_effective(*, account: BillingAccount, default: str | None = None) -> str:
    """The developer's own billing type, else the organisation's default (read if not given)."""
    return account.billing_type or default or organization_settings_get().default_billing_type


def developer_account_by_email(email: str) -> BillingAccount | None:
    """The billing account of the active developer (not staff) with this exact email, with its
    user: one prepared read (billing/sql.py), for the API's calls made many times a second."""
    return developer_account_from_row(fetch_one(_account_by_email_sql(), [email]))


def developer_account_read() -> str:
    """`developer_account_by_email`'s statement (one parameter: the email), for a caller that
    reads more in the same round trip: the API's balance:debit reads its token too."""
    return _account_by_email_sql()


def developer_account_from_row(row: Sequence[Any] | None) -> BillingAccount | None:
    """The account (with its user) from the statement's columns; None if they are empty."""
    if not row or row[0] is None:
        return None
    account_columns = len(BillingAccount._meta.concrete_fields)
    account = instance_from_row(BillingAccount, row[:account_columns])
    account.user = instance_from_row(User, row[account_columns:])
    return account


@functools.cache
def _account_by_email_sql() -> str:  # noqa: N802 - a constant, made once the models are ready
    columns = model_columns(BillingAccount, "a") + model_columns(User, "u")
    return f"""
SELECT {", ".join(columns)}
FROM {BillingAccount._meta.db_table} a
JOIN {User._meta.db_table} u ON u.id = a.user_id
WHERE u.email = %s AND NOT u.is_staff AND u.is_active
"""  # noqa: S608 - names from the models, values as parameters
