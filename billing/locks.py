"""Every row lock billing takes, in one place, and the one order they are taken in.

The global lock order: a transaction that takes two of these takes them top to bottom.

1. a top-up (`top_up_lock`: the webhook and the recharge credit take turns per payment);
2. a recharge attempt;
3. an auto-recharge (`auto_recharge_lock`, `auto_recharge_lock_for`);
4. the organisation settings row (`organization_settings_hold` FOR KEY SHARE, as a debit
   reads it; `organization_settings_lock` FOR UPDATE to change it);
5. the billing account (FOR UPDATE to change its billing type; FOR NO KEY UPDATE in
   `top_up_limits_lock`, so that debits, which read it FOR KEY SHARE, are not held up);
6. a wallet (the ledger's one statement, which reads the account and the settings FOR KEY
   SHARE as it moves the balance).

So whoever holds the settings FOR UPDATE touches only accounts and wallets after it: switching
off the auto-recharges of a withdrawn currency waits for the commit (a reaction). Locks are
taken only inside `transaction.atomic()`; Stripe calls and email happen after the commit.
tests/billing/test_lock_order.py proves each pair.
"""

from __future__ import annotations

from django.db import connection

from billing.models import (
    AutoRecharge,
    BillingAccount,
    OrganizationSettings,
    RechargeAttempt,
    TopUp,
)


def organization_settings_hold() -> None:
    """Lock the organisation settings as a debit does (FOR KEY SHARE), before the account.

    Changing the default locks the settings and then each following developer's account; a
    developer's own change must take them in the same order, or, locking the account and then
    waiting for the settings in its ledger entry, it deadlocks with the default's change.
    Also keeps the default read after it from changing meanwhile. SQLite has one writer at a
    time.
    """
    org, _ = OrganizationSettings.objects.get_or_create(pk=OrganizationSettings.SINGLETON_ID)
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {OrganizationSettings._meta.db_table} WHERE id = %s FOR KEY SHARE",  # noqa: S608
            [org.pk],
        )


def organization_settings_lock() -> OrganizationSettings:
    """The settings row, locked FOR UPDATE to change it (made first if it is missing)."""
    OrganizationSettings.objects.get_or_create(pk=OrganizationSettings.SINGLETON_ID)
    return OrganizationSettings.objects.select_for_update().get(
        pk=OrganizationSettings.SINGLETON_ID
    )


def top_up_lock(*, top_up_id: int) -> TopUp:
    return (
        TopUp.objects.select_for_update(of=("self",))
        .select_related("billing_account")
        .get(pk=top_up_id)
    )


def recharge_attempt_lock(*, pk: int) -> RechargeAttempt:
    """The attempt alone is locked; its auto-recharge, account and user are read alongside."""
    return (
        RechargeAttempt.objects.select_for_update(of=("self",))
        .select_related("auto_recharge__billing_account__user")
        .get(pk=pk)
    )


def auto_recharge_lock(*, pk: int) -> AutoRecharge:
    return AutoRecharge.objects.select_for_update().get(pk=pk)


def auto_recharge_lock_for(*, account_id: int, currency: str) -> AutoRecharge | None:
    """The auto-recharge of one wallet, locked, with its account and user read alongside.
    Only this row: locking the joined account FOR UPDATE waited for debits, which hold it FOR
    KEY SHARE while waiting for the wallet, and deadlocked with them."""
    return (
        AutoRecharge.objects.select_for_update(of=("self",))
        .select_related("billing_account__user")
        .filter(billing_account_id=account_id, currency=currency)
        .first()
    )


def top_up_limits_lock(*, account: BillingAccount) -> None:
    """Inside a transaction, before top_up_check and recording the top-up: Add credit and the
    auto-recharge claim take turns per account, so that neither misses the other's top-up in
    the wait or the trust tier's monthly total.

    NO KEY UPDATE: debits, which read the account FOR KEY SHARE, are not held up. What the
    checks read of the account is read again under the lock: a billing type or trust tier
    changed while this waited applies, not the one read before.
    """
    locked = (
        BillingAccount.objects.select_for_update(no_key=True)
        .filter(pk=account.pk)
        .values("billing_type", "trust_tier")
        .first()
    )
    if locked is not None:
        account.billing_type, account.trust_tier = locked["billing_type"], locked["trust_tier"]
