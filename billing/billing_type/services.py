"""Writes of billing types: a developer's own, and the organisation's default."""

from __future__ import annotations

from django.db import transaction

from accounts.models import User
from billing.audit import audit_log
from billing.billing_accounts.selectors import billing_type_effective
from billing.exceptions import BillingError, BillingTypeConflict
from billing.ledger.entries import Actor, ledger_apply
from billing.locks import organization_settings_hold, organization_settings_lock
from billing.models import BillingAccount, BillingType, BillingTypeChange, LedgerEntry, Wallet
from billing.money import money_format


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
    organization_settings_hold()
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


@transaction.atomic
def organization_default_billing_type_set(*, billing_type: str, changed_by: User | None) -> int:
    """Change the organisation default; returns how many developers' effective type changed."""
    new_type = _valid_billing_type(billing_type)
    org = organization_settings_lock()
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
        balance = wallet.balance_money
        if change.new_billing_type == BillingType.POSTPAID:
            delta = 0
            memo = f"Prepaid balance of {balance} carried into postpaid billing as a credit."
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
