"""The ledger: every balance change is one immutable entry written in the same transaction as
an atomic `UPDATE … SET balance = balance + x`, so the cached balance always equals the sum of
the entries, concurrent writers never lose an update, and a transaction id applies at most once
(the unique index decides, even for two requests arriving at the same moment)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import ApiToken, User
from billing.billing_accounts.selectors import billing_type_effective, organization_settings_get
from billing.billing_accounts.services import organization_settings_ensure
from billing.events import emit_after_commit
from billing.exceptions import BillingError, InsufficientFunds, TransactionConflict
from billing.ledger.events import BalanceAlertsDue, MoneyCredited, RechargeMayBeDue
from billing.models import BillingAccount, BillingType, LedgerEntry, OrganizationSettings, Wallet
from billing.money import MAX_AMOUNT_NANOS, Money
from billing.sql import fetch_one

Kind = LedgerEntry.Kind


# One statement locks the wallet row, checks the floor against the billing type and grace as they
# are at that instant, and moves the balance. No row back means it refused (or no wallet yet).
# The effective billing type is the account's own or else the organisation default.
#
# On PostgreSQL the account and organisation rows are read FOR KEY SHARE: a billing-type change
# holds them FOR UPDATE while it settles the wallets, so a debit waits for it and is then judged
# by the new type. Without the lock a debit blocked on the wallet row would be re-checked against
# the wallet's new balance but the account's old type (READ COMMITTED re-reads only the updated
# row), and could take a freshly prepaid wallet below its floor. SQLite has one writer at a time.
def _move_balance_sql(lock: str) -> str:
    return f"""
    UPDATE {Wallet._meta.db_table} AS w
    SET balance = w.balance + %s,
        last_credit_at = CASE WHEN %s = 1 THEN %s ELSE w.last_credit_at END
    FROM (SELECT id AS account_id, billing_type FROM {BillingAccount._meta.db_table}
          WHERE id = %s {lock}) AS a,
         (SELECT default_billing_type, prepaid_grace_nanos
          FROM {OrganizationSettings._meta.db_table}
          WHERE id = {OrganizationSettings.SINGLETON_ID} {lock}) AS o
    WHERE w.billing_account_id = %s AND w.currency = %s AND a.account_id = w.billing_account_id
      AND w.balance + %s BETWEEN %s AND %s
      AND (%s = 0
           OR COALESCE(NULLIF(a.billing_type, ''), o.default_billing_type)
              <> '{BillingType.PREPAID}'
           OR w.balance + %s >= -o.prepaid_grace_nanos)
    RETURNING id, balance, recharge_below, (owes_fees OR usage_owed > 0) AS owes,
              last_credit_at, billing_account_id, COALESCE(balance <= alert_at, FALSE) AS alert

"""  # noqa: S608 - table names come from the models, values are parameters


_MOVE_BALANCE = _move_balance_sql(lock="")


# PostgreSQL: the move and the entry in a single statement, so a debit costs one round trip.
# A duplicate transaction id fails the whole statement (unique index), moving nothing.
_MOVE_AND_RECORD = f"""
    WITH moved AS ({_move_balance_sql(lock="FOR KEY SHARE")}),
    entry AS (
        INSERT INTO {LedgerEntry._meta.db_table}
            (wallet_id, kind, amount, balance_after, transaction_id, actor_type, actor_user_id,
             actor_token_id, memo, created_at, lot_id)
        SELECT moved.id, %s, %s::bigint, moved.balance, %s, %s, %s::bigint, %s::bigint, %s,
               %s::timestamptz, %s::bigint
        FROM moved
        RETURNING id, wallet_id, balance_after
    )
    SELECT entry.id, entry.wallet_id, entry.balance_after, moved.recharge_below, moved.owes,
           moved.alert, moved.last_credit_at,
           (SELECT count(*) FROM {Wallet._meta.db_table} other
            WHERE other.billing_account_id = moved.billing_account_id) = 1
    FROM entry, moved
"""  # noqa: S608


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
    # The balance is now below the wallet's auto-recharge threshold.
    below_recharge_threshold: bool = False
    # Read by the same statement (PostgreSQL, not a replay): the wallet's last top-up time as
    # of the change, and whether the account has no other wallet. Then the wallets "as of the
    # change" are known without another read.
    as_of: WalletAsOf | None = None


@dataclass(frozen=True)
class WalletAsOf:
    currency: str
    last_credit_at: datetime | None
    sole_wallet: bool


@dataclass(frozen=True)
class _Recorded:
    entry: LedgerEntry
    recharge_below: int | None
    owes: bool
    alert: bool  # the balance is at or below the wallet's armed low-balance alert
    as_of: WalletAsOf | None = None


def ledger_apply(
    *,
    account: BillingAccount,
    currency: str,
    delta: int,
    kind: LedgerEntry.Kind,
    transaction_id: str,
    actor: Actor,
    memo: str = "",
    prepaid_floor: bool = False,
    lot_id: int | None = None,
) -> LedgerResult:
    """Apply one signed change exactly once. `prepaid_floor`: refuse a debit that would take a
    prepaid wallet below minus the organisation's grace. `lot_id`: the credit lot a refund,
    dispute or expiry concerns (billing/expiry/lots.py counts it against that lot first)."""
    _check_transaction_id(transaction_id)
    change = _Change(
        account, currency, delta, kind, transaction_id, actor, memo[:500], prepaid_floor, lot_id
    )
    try:
        recorded = _record(change)
        if recorded is None:
            # A replay, no wallet yet, or the floor refused: find out which, and try once more.
            existing = _entry_for(transaction_id)
            if existing is not None:
                return _replay(existing, change)
            _prepare_wallet(change)
            recorded = _record(change)
        if recorded is None:
            _refuse(change)
    except (IntegrityError, InsufficientFunds):
        # A transaction id seen before is a replay (or a conflict), whatever the balance is now.
        existing = _entry_for(transaction_id)
        if existing is None:
            raise
        return _replay(existing, change)
    entry, recharge_below = recorded.entry, recorded.recharge_below
    below = recharge_below is not None and entry.balance_after < recharge_below
    if below:
        emit_after_commit(RechargeMayBeDue(account.pk, currency))
    if delta > 0 and recorded.owes:  # read by the same statement: no query if nothing is owed
        emit_after_commit(MoneyCredited(account.pk, currency))
    # Low-balance alerts follow spending (a refund or dispute the developer knows of already
    # sends its own receipt); a top-up re-arms them.
    if (recorded.alert and kind in (Kind.USAGE, Kind.FEE)) or kind == Kind.TOP_UP:
        emit_after_commit(BalanceAlertsDue(account.pk, currency))
    return LedgerResult(
        entry=entry, replayed=False, below_recharge_threshold=below, as_of=recorded.as_of
    )


@dataclass(frozen=True)
class _Change:
    account: BillingAccount
    currency: str
    delta: int
    kind: LedgerEntry.Kind
    transaction_id: str
    actor: Actor
    memo: str
    prepaid_floor: bool
    lot_id: int | None = None

    def move_params(self, now: Any) -> list[Any]:
        credited = int(self.delta > 0 and self.kind == Kind.TOP_UP)
        checks_floor = int(self.prepaid_floor and self.delta < 0)
        d = self.delta
        lo, hi = -MAX_AMOUNT_NANOS, MAX_AMOUNT_NANOS
        account = self.account.pk
        return [d, credited, now, account, account, self.currency, d, lo, hi, checks_floor, d]

    def entry(self, *, wallet_id: int, balance_after: int, now: Any) -> LedgerEntry:
        return LedgerEntry(
            wallet_id=wallet_id,
            kind=self.kind,
            amount=self.delta,
            balance_after=balance_after,
            transaction_id=self.transaction_id,
            actor_type=self.actor.type,
            actor_user=self.actor.user,
            actor_token=self.actor.token,
            memo=self.memo,
            created_at=now,
            lot_id=self.lot_id,
        )

    def entry_params(self, now: Any) -> list[Any]:
        user_id = self.actor.user.pk if self.actor.user else None
        token_id = self.actor.token.pk if self.actor.token else None
        return [
            self.kind, self.delta, self.transaction_id, self.actor.type, user_id, token_id,
            self.memo, now, self.lot_id,
        ]  # fmt: skip


def _record(change: _Change) -> _Recorded | None:
    """Move the balance and write the entry atomically; None when the move was refused.
    Also returns the wallet's auto-recharge threshold and whether it owes plan fees or usage."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        return _record_in_one_statement(change, now)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                _MOVE_BALANCE, change.move_params(connection.ops.adapt_datetimefield_value(now))
            )
            row = cursor.fetchone()
        if row is None:
            return None
        entry = change.entry(wallet_id=row[0], balance_after=row[1], now=now)
        entry.save(force_insert=True)
        return _Recorded(entry, row[2], bool(row[3]), bool(row[6]))


def _record_in_one_statement(change: _Change, now: datetime) -> _Recorded | None:
    params = change.move_params(now) + change.entry_params(now)
    # Inside a caller's transaction a failed statement would poison it: use a savepoint there.
    # Prepared once per connection (billing/sql.py): planning it cost more than running it.
    if connection.in_atomic_block:
        with transaction.atomic():
            row = fetch_one(_MOVE_AND_RECORD, params)
    else:
        row = fetch_one(_MOVE_AND_RECORD, params)
    if row is None:
        return None
    entry = change.entry(wallet_id=row[1], balance_after=row[2], now=now)
    entry.id = row[0]
    as_of = WalletAsOf(change.currency, row[6], bool(row[7]))
    return _Recorded(entry, row[3], bool(row[4]), bool(row[5]), as_of)


def _prepare_wallet(change: _Change) -> None:
    """Make sure the rows the statement joins exist; a refused prepaid debit creates nothing."""
    organization_settings_ensure()
    if Wallet.objects.filter(billing_account=change.account, currency=change.currency).exists():
        return
    floor = prepaid_floor(change.account, change.currency)
    if change.prepaid_floor and floor is not None and change.delta < floor:
        _refuse(change)
    # Two first credits at once: both insert, the unique constraint keeps one, both use it.
    Wallet.objects.bulk_create(
        [Wallet(billing_account=change.account, currency=change.currency)], ignore_conflicts=True
    )


def _refuse(change: _Change) -> NoReturn:
    wallet = Wallet.objects.filter(billing_account=change.account, currency=change.currency).first()
    balance = wallet.balance if wallet else 0
    if abs(balance + change.delta) > MAX_AMOUNT_NANOS:
        raise BillingError("The balance would exceed the largest amount a wallet holds.")
    raise InsufficientFunds(
        f"Insufficient funds: the {change.currency} balance is "
        f"{Money(balance, change.currency)} and this debit is "
        f"{Money(-change.delta, change.currency)}."
    )


def _entry_for(transaction_id: str) -> LedgerEntry | None:
    return (
        LedgerEntry.objects.select_related("wallet").filter(transaction_id=transaction_id).first()
    )


def _replay(existing: LedgerEntry, change: _Change) -> LedgerResult:
    wallet = existing.wallet
    if (wallet.billing_account_id, wallet.currency, existing.amount, existing.kind) != (
        change.account.pk,
        change.currency,
        change.delta,
        change.kind,
    ):
        if wallet.billing_account_id != change.account.pk:
            # Another developer's entry: whoever asks learns only that the id is taken, not
            # what that developer was credited or charged.
            raise TransactionConflict(
                f"Transaction id {existing.transaction_id!r} is already taken; use a new "
                "transaction id."
            )
        raise TransactionConflict(
            f"Transaction id {existing.transaction_id!r} was already used for "
            f"{Money(abs(existing.amount), wallet.currency)} "
            f"({existing.get_kind_display().lower()}); use a new transaction id for a different "
            "amount or currency."
        )
    return LedgerResult(entry=existing, replayed=True)


def _check_transaction_id(transaction_id: str) -> None:
    if not isinstance(transaction_id, str) or not transaction_id.strip():
        raise BillingError("A transaction id is required.")
    if len(transaction_id) > 255:
        raise BillingError("A transaction id is at most 255 characters.")
    if not transaction_id.isprintable():
        raise BillingError("A transaction id must not contain control characters.")


def prepaid_floor(account: BillingAccount, currency: str) -> int | None:
    """The lowest balance a debit may leave in a prepaid wallet (minus the organisation's
    grace), or None for a postpaid one. The ledger's statement is the enforcement; this is for
    checking and explaining before it."""
    org = organization_settings_get()
    if billing_type_effective(account=account, default=org.default_billing_type) != (
        BillingType.PREPAID
    ):
        return None
    return -org.prepaid_grace_nanos
