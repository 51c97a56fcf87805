"""The ledger: every balance change is one immutable entry written in the same transaction as
an atomic `UPDATE … SET balance = balance + x`, so the cached balance always equals the sum of
the entries, concurrent writers never lose an update, and a transaction id applies at most once
(the unique index decides, even for two requests arriving at the same moment)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import ApiToken, User
from billing.exceptions import BillingError, InsufficientFunds, TransactionConflict
from billing.models import BillingAccount, BillingType, LedgerEntry, Wallet
from billing.money import MAX_AMOUNT_NANOS, Money, money_format
from billing.selectors import organization_settings_get

Kind = LedgerEntry.Kind

# One statement that locks the row, checks the floor and moves the balance; no row back means
# the floor (or the overflow guard) refused it. RETURNING works on PostgreSQL and SQLite ≥ 3.35.
_UPDATE_BALANCE = f"""
    UPDATE {Wallet._meta.db_table}
    SET balance = balance + %s,
        last_credit_at = CASE WHEN %s THEN %s ELSE last_credit_at END
    WHERE id = %s AND balance + %s >= %s AND balance + %s <= %s
    RETURNING balance
"""  # noqa: S608 - the table name comes from the model, values are parameters


@dataclass(frozen=True)
class Actor:
    """Who or what caused a ledger entry."""

    type: LedgerEntry.ActorType
    user: User | None = None
    token: ApiToken | None = None

    @classmethod
    def for_user(cls, user: User) -> Actor:
        return cls(LedgerEntry.ActorType.USER, user=user)

    @classmethod
    def for_token(cls, token: ApiToken) -> Actor:
        return cls(LedgerEntry.ActorType.TOKEN, user=token.user, token=token)

    @classmethod
    def system(cls) -> Actor:
        return cls(LedgerEntry.ActorType.SYSTEM)

    @classmethod
    def stripe(cls) -> Actor:
        return cls(LedgerEntry.ActorType.STRIPE)


@dataclass(frozen=True)
class LedgerResult:
    entry: LedgerEntry
    replayed: bool  # True when the transaction id had already been applied: nothing changed


def wallet_credit(
    *,
    account: BillingAccount,
    money: Money,
    transaction_id: str,
    actor: Actor,
    kind: str = Kind.TOP_UP,
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
    kind: str = Kind.USAGE,
    memo: str = "",
) -> LedgerResult:
    """Take money; prepaid wallets refuse to go below minus the organisation's grace,
    postpaid wallets accrue."""
    if money.nanos <= 0:
        raise BillingError("A debit must be a positive amount.")
    org = organization_settings_get()
    prepaid = (account.billing_type or org.default_billing_type) == BillingType.PREPAID
    return ledger_apply(
        account=account,
        currency=money.currency,
        delta=-money.nanos,
        kind=kind,
        transaction_id=transaction_id,
        actor=actor,
        memo=memo,
        floor=-org.prepaid_grace_nanos if prepaid else None,
    )


def ledger_apply(
    *,
    account: BillingAccount,
    currency: str,
    delta: int,
    kind: str,
    transaction_id: str,
    actor: Actor,
    memo: str = "",
    floor: int | None = None,
) -> LedgerResult:
    """Apply one signed change exactly once. `floor`: the lowest balance a debit may leave."""
    _check_transaction_id(transaction_id)
    try:
        with transaction.atomic():
            balance_after = _move_balance(account, currency, delta, kind, floor)
            entry = LedgerEntry.objects.create(
                wallet_id=balance_after[0],
                kind=kind,
                amount=delta,
                balance_after=balance_after[1],
                transaction_id=transaction_id,
                actor_type=actor.type,
                actor_user=actor.user,
                actor_token=actor.token,
                memo=memo[:500],
            )
    except (IntegrityError, InsufficientFunds):
        # A transaction id seen before is a replay (or a conflict), whatever the balance is now.
        existing = _entry_for(transaction_id)
        if existing is None:
            raise
        return _replay(existing, account=account, currency=currency, delta=delta, kind=kind)
    return LedgerResult(entry=entry, replayed=False)


def _move_balance(
    account: BillingAccount, currency: str, delta: int, kind: str, floor: int | None
) -> tuple[int, int]:
    wallet_id = _wallet_id(account, currency)
    lowest = -MAX_AMOUNT_NANOS if floor is None or delta >= 0 else floor
    credited = delta > 0 and kind == Kind.TOP_UP
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            _UPDATE_BALANCE,
            [delta, credited, now, wallet_id, delta, lowest, delta, MAX_AMOUNT_NANOS],
        )
        row = cursor.fetchone()
    if row is None:
        balance = Wallet.objects.values_list("balance", flat=True).get(pk=wallet_id)
        if balance + delta > MAX_AMOUNT_NANOS or balance + delta < -MAX_AMOUNT_NANOS:
            raise BillingError("The balance would exceed the largest amount a wallet holds.")
        raise InsufficientFunds(
            f"Insufficient funds: the {currency} balance is "
            f"{money_format(Money(balance, currency))} and this debit is "
            f"{money_format(Money(-delta, currency))}."
        )
    return wallet_id, row[0]


def _wallet_id(account: BillingAccount, currency: str) -> int:
    found = (
        Wallet.objects.filter(billing_account=account, currency=currency)
        .values_list("id", flat=True)
        .first()
    )
    if found is not None:
        return found
    # Two first credits at once: both insert, the unique constraint keeps one, both use it.
    Wallet.objects.bulk_create(
        [Wallet(billing_account=account, currency=currency)], ignore_conflicts=True
    )
    return Wallet.objects.values_list("id", flat=True).get(
        billing_account=account, currency=currency
    )


def _entry_for(transaction_id: str) -> LedgerEntry | None:
    return (
        LedgerEntry.objects.select_related("wallet").filter(transaction_id=transaction_id).first()
    )


def _replay(
    existing: LedgerEntry, *, account: BillingAccount, currency: str, delta: int, kind: str
) -> LedgerResult:
    wallet = existing.wallet
    if (wallet.billing_account_id, wallet.currency, existing.amount, existing.kind) != (
        account.pk,
        currency,
        delta,
        kind,
    ):
        raise TransactionConflict(
            f"Transaction id {existing.transaction_id!r} was already used for "
            f"{money_format(Money(abs(existing.amount), wallet.currency))} "
            f"({existing.get_kind_display().lower()}); use a new transaction id for a different "
            "amount, currency or developer."
        )
    return LedgerResult(entry=existing, replayed=True)


def _check_transaction_id(transaction_id: str) -> None:
    if not isinstance(transaction_id, str) or not transaction_id.strip():
        raise BillingError("A transaction id is required.")
    if len(transaction_id) > 255:
        raise BillingError("A transaction id is at most 255 characters.")
