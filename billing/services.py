"""Writes of billing state. Each function is one transaction and logs what it changed."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection, transaction

from accounts.models import User
from billing.exceptions import BillingError, BillingTypeConflict, TransactionConflict
from billing.ledger import Actor, LedgerResult, ledger_apply, transaction_id_refuse_reserved
from billing.models import (
    AuditLogEntry,
    BillingAccount,
    BillingType,
    BillingTypeChange,
    LedgerEntry,
    OrganizationSettings,
    TopUpLimit,
    Wallet,
)
from billing.money import MAX_AMOUNT_NANOS, Money, money_format
from billing.selectors import billing_type_effective, organization_settings_get


def audit_log(
    *, actor: User | None, action: str, target_user: User | None = None, **data: Any
) -> None:
    AuditLogEntry.objects.create(actor=actor, action=action, target_user=target_user, data=data)


def billing_account_get_or_create(*, user: User) -> BillingAccount:
    account, _ = BillingAccount.objects.get_or_create(user=user)
    return account


def billing_details_update(*, account: BillingAccount, legal_company_name: str) -> BillingAccount:
    account.legal_company_name = legal_company_name
    account.save(update_fields=["legal_company_name"])
    return account


def _valid_billing_type(billing_type: str) -> BillingType:
    if billing_type not in BillingType.values:
        raise BillingError(
            f"Unknown billing type {billing_type!r}: choose {' or '.join(BillingType.values)}."
        )
    return BillingType(billing_type)


@transaction.atomic
def billing_type_set(
    *,
    account: BillingAccount,
    billing_type: str,
    changed_by: User | None,
    source: BillingTypeChange.Source,
    expected_current: str | None = None,
) -> BillingTypeChange | None:
    """Give one developer a billing type of their own; returns the history row, None if unchanged.

    `expected_current` is the stored type the admin saw on the confirmation page: if another
    change landed in between, the admin must look again instead of overwriting it blindly.
    """
    new_type = _valid_billing_type(billing_type)
    _organization_settings_hold()
    account = BillingAccount.objects.select_for_update().get(pk=account.pk)
    if expected_current is not None and account.billing_type != expected_current:
        raise BillingTypeConflict(
            "The billing type was changed by someone else meanwhile. Review it and try again."
        )
    old_effective = billing_type_effective(account=account)
    if account.billing_type == new_type:
        return None
    account.billing_type = new_type
    account.save(update_fields=["billing_type"])
    audit_log(
        actor=changed_by,
        action="billing_type.set",
        target_user=account.user,
        old=old_effective,
        new=new_type,
        source=source,
    )
    if old_effective == new_type:
        # Was following the default and now pins the same type: nothing changes for the developer.
        return None
    change = BillingTypeChange.objects.create(
        billing_account=account,
        changed_by=changed_by,
        source=source,
        old_billing_type=old_effective,
        new_billing_type=new_type,
    )
    _record_billing_type_change_in_ledger(change=change, actor=_actor(changed_by))
    return change


def _organization_settings_hold() -> None:
    """Lock the organisation settings as a debit does (FOR KEY SHARE), before the account.

    Changing the default locks the settings and then each following developer's account; a
    developer's own change must take them in the same order, or, locking the account and then
    waiting for the settings in its ledger entry, it deadlocks with the default's change.
    Also keeps the default read below from changing meanwhile. SQLite has one writer at a time.
    """
    org = organization_settings_get()  # the row exists from here on
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {OrganizationSettings._meta.db_table} WHERE id = %s FOR KEY SHARE",  # noqa: S608
            [org.pk],
        )


@transaction.atomic
def organization_default_billing_type_set(*, billing_type: str, changed_by: User | None) -> int:
    """Change the organisation default; returns how many developers' effective type changed."""
    new_type = _valid_billing_type(billing_type)
    org = OrganizationSettings.objects.select_for_update().get(pk=organization_settings_get().pk)
    old_type = org.default_billing_type
    if old_type == new_type:
        return 0
    org.default_billing_type = new_type
    org.save(update_fields=["default_billing_type", "updated_at"])
    # Developers without a billing type of their own follow the default: record it in their history.
    following = BillingAccount.objects.filter(billing_type="", user__is_staff=False)
    changes = [
        BillingTypeChange(
            billing_account_id=account_id,
            changed_by=changed_by,
            source=BillingTypeChange.Source.ORGANIZATION_DEFAULT,
            old_billing_type=old_type,
            new_billing_type=new_type,
        )
        for account_id in following.values_list("pk", flat=True)
    ]
    BillingTypeChange.objects.bulk_create(changes, batch_size=1000)
    # bulk_create returned the ids (PostgreSQL, SQLite ≥ 3.35); only money needs ledger entries.
    with_money = set(
        Wallet.objects.filter(billing_account__in=following)
        .exclude(balance=0)
        .values_list("billing_account_id", flat=True)
    )
    for change in changes:
        if change.billing_account_id in with_money:
            _record_billing_type_change_in_ledger(change=change, actor=_actor(changed_by))
    audit_log(
        actor=changed_by,
        action="organization.default_billing_type.set",
        old=old_type,
        new=new_type,
        developers_affected=len(changes),
    )
    return len(changes)


def _actor(user: User | None) -> Actor:
    return Actor.for_user(user) if user else Actor.system()


def _record_billing_type_change_in_ledger(*, change: BillingTypeChange, actor: Actor) -> None:
    """Seed 004, "Change of billing type", for the money already in the wallets.

    Prepaid → postpaid: each remaining balance stays as a credit for the next postpaid bill; a
    zero-amount entry records it. Postpaid → prepaid: usage accrued while postpaid is billed
    separately, so a negative balance is cleared and prepaid starts from zero.
    """
    wallets = Wallet.objects.filter(billing_account_id=change.billing_account_id).exclude(balance=0)
    for wallet in wallets:
        balance = Money(wallet.balance, wallet.currency)
        if change.new_billing_type == BillingType.POSTPAID:
            delta = 0
            memo = (
                f"Prepaid balance of {money_format(balance)} carried into postpaid billing "
                "as a credit."
            )
        elif wallet.balance < 0:
            delta = -wallet.balance
            memo = (
                f"Postpaid usage of {money_format(-balance)} moved to a separate invoice; "
                "prepaid starts from zero."
            )
        else:
            continue
        ledger_apply(
            account=change.billing_account,
            currency=wallet.currency,
            delta=delta,
            kind=LedgerEntry.Kind.BILLING_TYPE_CHANGE,
            transaction_id=f"billing-type-change:{change.pk}:{wallet.currency}",
            actor=actor,
            memo=memo,
        )


def wallet_adjust(
    *,
    account: BillingAccount,
    change: Money,
    actor: Actor,
    reason: str,
    transaction_id: str | None = None,
) -> LedgerResult:
    """Correct a balance: `change` is added to it (negative for an under-charge). Audited.

    Like a debit, a decrease may not take a prepaid wallet below minus the organisation's grace:
    a prepaid balance goes negative only within the grace (DESIGN.md).
    """
    if change.nanos == 0:
        raise BillingError("An adjustment must not be zero.")
    if not reason.strip():
        raise BillingError("A reason is required for every adjustment.")
    transaction_id_refuse_reserved(transaction_id)
    with transaction.atomic():
        try:
            result = ledger_apply(
                account=account,
                currency=change.currency,
                delta=change.nanos,
                kind=LedgerEntry.Kind.ADJUSTMENT,
                transaction_id=transaction_id or f"adjustment:{uuid.uuid4()}",
                actor=actor,
                memo=reason.strip(),
                prepaid_floor=True,
            )
        except TransactionConflict:
            raise
        except BillingError as exc:  # below the floor or past the largest balance: say by how much
            refusal = wallet_adjust_refusal(account=account, change=change)
            raise type(exc)(refusal or str(exc)) from None
        if not result.replayed:
            audit_log(
                actor=actor.user,
                action="balance.adjust",
                target_user=account.user,
                currency=change.currency,
                change_nanos=change.nanos,
                balance_after_nanos=result.entry.balance_after,
                reason=reason.strip(),
                transaction_id=result.entry.transaction_id,
                via="token" if actor.token else "user",
            )
    return result


def wallet_adjust_refusal(*, account: BillingAccount, change: Money) -> str | None:
    """Why this adjustment would be refused now, or None; shown before the admin confirms.
    wallet_adjust checks again in the statement that moves the balance."""
    wallet = Wallet.objects.filter(billing_account=account, currency=change.currency).first()
    balance = Money(wallet.balance if wallet else 0, change.currency)
    if abs(balance.nanos + change.nanos) > MAX_AMOUNT_NANOS:
        return _past_largest_balance(balance, change)
    if change.nanos >= 0 or billing_type_effective(account=account) != BillingType.PREPAID:
        return None
    grace = Money(organization_settings_get().prepaid_grace_nanos, change.currency)
    if balance.nanos + change.nanos >= -grace.nanos:
        return None
    most = Money(max(balance.nanos + grace.nanos, 0), change.currency)
    return (
        f"A prepaid balance may go at most {money_format(grace)} below zero (the grace in "
        f"Monetization settings). The {change.currency} balance is {money_format(balance)}, so "
        f"an adjustment can take off at most {money_format(most)}."
    )


def _past_largest_balance(balance: Money, change: Money) -> str:
    currency = balance.currency
    if change.nanos > 0:
        verb, most = "add", MAX_AMOUNT_NANOS - balance.nanos
    else:
        verb, most = "take off", MAX_AMOUNT_NANOS + balance.nanos
    return (
        f"A wallet holds at most {money_format(Money(MAX_AMOUNT_NANOS, currency))} either way. "
        f"The {currency} balance is {money_format(balance)}, so an adjustment can {verb} at "
        f"most {money_format(Money(most, currency))}."
    )


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
    org = OrganizationSettings.objects.select_for_update().get(pk=organization_settings_get().pk)
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
    if removed:
        # After the commit, outside the settings row's lock (a recharge's credit locks its
        # auto-recharge and then reads the settings row).
        transaction.on_commit(lambda: _auto_recharge_stop(removed), robust=True)
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


def _auto_recharge_stop(currencies: list[str]) -> None:
    """Auto-recharge needs Add credit in its currency: once that is no longer offered, it is
    switched off, so offering the currency again does not silently start charging cards."""
    from billing.auto_recharge import auto_recharge_switch_off_all  # it imports this module

    for currency in currencies:
        auto_recharge_switch_off_all(
            currency=currency,
            reason=f"Switched off because adding credit in {currency} is no longer offered.",
        )
