"""Every row lock billing takes, in one place, and the one order they are taken in.

The global lock order: a transaction that takes two of these takes them top to bottom.

1. a top-up (`top_up_lock`: the webhook and the recharge credit take turns per payment);
2. a recharge attempt;
3. an auto-recharge (`auto_recharge_lock`, `auto_recharge_lock_for`);
3a. a subscription (`subscription_lock`: the fee run, a cancellation and a late payment take
   turns per subscription);
3b. usage counters (billing/usage/ingest.py: by subscription and period, in a sorted order;
   nothing else takes them), before the ledger's settings, account and wallet;
4. the organisation settings row (`organization_settings_hold` FOR KEY SHARE, as a debit
   reads it; `organization_settings_lock` FOR UPDATE to change it);
5. the billing account (FOR UPDATE to change its billing type; FOR NO KEY UPDATE in
   `top_up_limits_lock`, `purchases_lock` and `owed_usage_lock`, so that debits, which read
   it FOR KEY SHARE, are not held up);
6. a wallet (the ledger's one statement, which reads the account and the settings FOR KEY
   SHARE as it moves the balance).

So whoever holds the settings FOR UPDATE touches only accounts and wallets after it: switching
off the auto-recharges of a withdrawn currency waits for the commit (a reaction). Locks are
taken only inside `transaction.atomic()`; Stripe calls and email happen after the commit.
tests/billing/test_lock_order.py proves each pair.
"""

from __future__ import annotations

import uuid
from typing import Any
from weakref import WeakKeyDictionary

from django.db import connection, connections
from django.db.models import Field, Model

from billing.models import (
    AutoRecharge,
    BillingAccount,
    OrganizationSettings,
    RechargeAttempt,
    Subscription,
    TopUp,
    Wallet,
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
    top_up = _top_up_locked("id", top_up_id)
    if top_up is None:
        raise TopUp.DoesNotExist(f"No top-up {top_up_id}.")
    return top_up


def top_up_lock_by(
    *, public_id: str = "", payment_intent_id: str = "", session_id: str = ""
) -> TopUp | None:
    """The top-up a Stripe object names (our id, else Stripe's), locked, or None."""
    if public_id:
        try:  # a malformed id in Stripe's metadata is not ours; PostgreSQL would refuse it
            return _top_up_locked("public_id", uuid.UUID(str(public_id)))
        except ValueError:
            return None
    if payment_intent_id:
        return _top_up_locked("stripe_payment_intent_id", payment_intent_id)
    if session_id:
        return _top_up_locked("stripe_checkout_session_id", session_id)
    return None


# Every Stripe event about a payment locks its top-up: one plain statement, because the ORM spent
# more CPU compiling this query (with its account and FOR UPDATE OF) than anything else the
# webhook does (bench/webhook.py). Only the top-up is locked; its account is read alongside.
_TOP_UP_FIELDS = [*TopUp._meta.concrete_fields, *BillingAccount._meta.concrete_fields]
_TOP_UP, _ACCOUNT = TopUp._meta.db_table, BillingAccount._meta.db_table
_COLUMNS = ", ".join(f"{f.model._meta.db_table}.{f.column}" for f in _TOP_UP_FIELDS)
_TOP_UP_SELECT = (
    f"SELECT {_COLUMNS} FROM {_TOP_UP} JOIN {_ACCOUNT} ON {_ACCOUNT}.id = {_TOP_UP}"  # noqa: S608
    f".billing_account_id WHERE {_TOP_UP}.{{column}} = %s"
)


def _top_up_locked(column: str, value: object) -> TopUp | None:
    field = TopUp._meta.get_field(column)
    assert isinstance(field, Field)
    sql = _TOP_UP_SELECT.format(column=field.column)
    if connection.features.has_select_for_update_of:  # SQLite has one writer at a time
        sql += f" FOR UPDATE OF {_TOP_UP}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [field.get_db_prep_value(value, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    values = _from_db(_TOP_UP_FIELDS, row)
    split = len(TopUp._meta.concrete_fields)
    top_up = _instance(TopUp, values[:split])
    top_up.billing_account = _instance(BillingAccount, values[split:])
    return top_up


def _from_db(fields: list[Field], row: tuple[Any, ...]) -> list[Any]:
    """The row's values as the ORM would give them (SQLite returns text for UUIDs and times)."""
    values = list(row)
    for i, column, converters in _converters(connections[connection.alias], tuple(fields)):
        for convert in converters:
            values[i] = convert(values[i], column, connection)
    return values


# Per connection (each thread has its own), what _from_db applies: on PostgreSQL almost nothing,
# and asking each field every time cost a third of the lock's CPU.
_CONVERTERS: WeakKeyDictionary[Any, dict[tuple[Field, ...], list[Any]]] = WeakKeyDictionary()


def _converters(conn: Any, fields: tuple[Field, ...]) -> list[Any]:
    known = _CONVERTERS.setdefault(conn, {})
    if fields not in known:
        known[fields] = []
        for i, field in enumerate(fields):
            column = field.get_col(field.model._meta.db_table)
            found = conn.ops.get_db_converters(column) + column.get_db_converters(conn)
            if found:
                known[fields].append((i, column, found))
    return known[fields]


def _instance(model: type[Model], values: list[Any]) -> Any:
    return model.from_db(connection.alias, [f.attname for f in model._meta.concrete_fields], values)


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


def subscription_lock(*, pk: int) -> Subscription | None:
    """One subscription, locked, with its plan, product and account read alongside (only this
    row is locked: the ledger reads the account FOR KEY SHARE after it)."""
    return (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("rate_plan", "product", "billing_account__user")
        .filter(pk=pk)
        .first()
    )


def purchases_lock(*, account: BillingAccount) -> None:
    """Purchases by one account take turns (after `organization_settings_hold`), so that of two
    at once the second finds the first's subscription and charges nothing. NO KEY UPDATE: the
    account's debits are not held up."""
    _account_no_key_lock(account.pk)


def owed_usage_lock(*, account_id: int) -> None:
    """Collectors of one account's owed usage take turns (after `organization_settings_hold`),
    so that the second sees what the first paid. NO KEY UPDATE: debits are not held up."""
    _account_no_key_lock(account_id)


def wallet_lots_lock(*, wallet_id: int) -> int:
    """A wallet's credit lots are counted by one at a time (billing/expiry/lots.py), holding the
    wallet as a debit does and, before it, what a debit reads: the settings and the account FOR
    KEY SHARE (steps 4 and 5), then the wallet FOR NO KEY UPDATE (step 6), so that a ledger
    entry made after it in the same transaction (an expiry, a refund) keeps the order. Returns
    the last entry the lots are counted through."""
    account_id = (
        Wallet.objects.filter(pk=wallet_id).values_list("billing_account_id", flat=True).get()
    )
    organization_settings_hold()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {BillingAccount._meta.db_table} WHERE id = %s FOR KEY SHARE",  # noqa: S608
                [account_id],
            )
    wallets = Wallet.objects.select_for_update(no_key=True).filter(pk=wallet_id)
    return wallets.values_list("lots_counted_through", flat=True).get()


def _account_no_key_lock(account_id: int) -> None:
    list(BillingAccount.objects.select_for_update(no_key=True).filter(pk=account_id).values("pk"))
