"""Writes of the ledger: credits, debits and admin adjustments, each exactly once."""

from __future__ import annotations

import uuid

from django.db import transaction

from billing.audit import audit_log
from billing.exceptions import BillingError, TransactionConflict
from billing.ledger.entries import Actor, Kind, LedgerResult, ledger_apply, prepaid_floor
from billing.models import BillingAccount, LedgerEntry, Wallet
from billing.money import MAX_AMOUNT_NANOS, Money


def wallet_credit(
    *,
    account: BillingAccount,
    money: Money,
    transaction_id: str,
    actor: Actor,
    kind: LedgerEntry.Kind = Kind.TOP_UP,
    memo: str = "",
) -> LedgerResult:
    """Add money; a negative balance is covered first, simply by the signed sum."""
    if money.nanos <= 0:
        raise BillingError("A credit must be a positive amount.")
    return ledger_apply(
        account=account,
        currency=money.currency,
        delta=money.nanos,
        kind=kind,
        transaction_id=transaction_id,
        actor=actor,
        memo=memo,
    )


def wallet_debit(
    *,
    account: BillingAccount,
    money: Money,
    transaction_id: str,
    actor: Actor,
    kind: LedgerEntry.Kind = Kind.USAGE,
    memo: str = "",
) -> LedgerResult:
    """Take money; prepaid wallets refuse to go below minus the organisation's grace,
    postpaid wallets accrue."""
    if money.nanos <= 0:
        raise BillingError("A debit must be a positive amount.")
    return ledger_apply(
        account=account,
        currency=money.currency,
        delta=-money.nanos,
        kind=kind,
        transaction_id=transaction_id,
        actor=actor,
        memo=memo,
        prepaid_floor=True,
    )


# Ids the portal writes for its own entries (Stripe payments, refunds, disputes, billing-type
# moves). A caller of the API may not use them: a credit under a payment's pi_ id would turn
# Stripe's later credit into a replay, and a debit under refund: would block the refund's debit.
RESERVED_TRANSACTION_ID_PREFIXES = (
    "pi_",
    "refund:",
    "refund-failed:",
    "dispute:",
    "dispute-won:",
    "billing-type-change:",
    # Plan fees and usage (a caller's debit under one of these ids would make the portal's own
    # charge a replay or a conflict).
    "purchase:",
    "fee:",
    "usage:",
    "usage-owed:",
)


def transaction_id_refuse_reserved(transaction_id: str | None) -> None:
    """For ids chosen by a caller: refuse the prefixes of the portal's own entries."""
    for prefix in RESERVED_TRANSACTION_ID_PREFIXES:
        if transaction_id and transaction_id.startswith(prefix):
            raise BillingError(
                f"transactionId: ids starting with {prefix!r} are reserved for the portal's own "
                "entries (card payments, refunds, disputes); choose another id."
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
    floor = prepaid_floor(account, change.currency)
    if change.nanos >= 0 or floor is None or balance.nanos + change.nanos >= floor:
        return None
    grace = Money(-floor, change.currency)
    most = Money(max(balance.nanos + grace.nanos, 0), change.currency)
    return (
        f"A prepaid balance may go at most {grace} below zero (the grace in "
        f"Monetization settings). The {change.currency} balance is {balance}, so "
        f"an adjustment can take off at most {most}."
    )


def _past_largest_balance(balance: Money, change: Money) -> str:
    currency = balance.currency
    if change.nanos > 0:
        verb, most = "add", MAX_AMOUNT_NANOS - balance.nanos
    else:
        verb, most = "take off", MAX_AMOUNT_NANOS + balance.nanos
    return (
        f"A wallet holds at most {Money(MAX_AMOUNT_NANOS, currency)} either way. "
        f"The {currency} balance is {balance}, so an adjustment can {verb} at "
        f"most {Money(most, currency)}."
    )
