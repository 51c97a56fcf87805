"""Reads of wallets and ledger entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from billing.models import BillingAccount, LedgerEntry, Wallet
from billing.money import Money
from billing.sql import aware, fetch_all


@dataclass(frozen=True)
class LedgerMismatch:
    wallet_id: int
    currency: str
    owner: str
    balance: int
    entries_sum: int


def ledger_mismatches() -> list[LedgerMismatch]:
    """Wallets whose cached balance differs from the sum of their ledger entries."""
    wallets = (
        Wallet.objects.annotate(entries_sum=Coalesce(Sum("entries__amount"), Value(0)))
        .select_related("billing_account__user")
        .order_by("id")
    )
    return [
        LedgerMismatch(
            w.pk, w.currency, w.billing_account.user.email, w.balance, int(w.entries_sum)
        )
        for w in wallets.iterator(chunk_size=2000)
        if int(w.entries_sum) != w.balance
    ]


@dataclass(frozen=True)
class WalletBalance:
    """One wallet as seed 004's `wallets` list shows it."""

    balance: Money
    last_credit_at: datetime | None


def wallets_balance(
    *, account: BillingAccount, as_of: LedgerEntry | None = None
) -> list[WalletBalance]:
    """The account's wallets, one per currency in the order they were opened.

    `as_of`: a ledger entry; the wallets are shown as they stood right after it (balance of the
    last entry up to it, last top-up up to it), so a replayed request gets the first answer.
    """
    if as_of is None:
        wallets = Wallet.objects.filter(billing_account=account).order_by("id")
        return [WalletBalance(Money(w.balance, w.currency), w.last_credit_at) for w in wallets]
    result = []
    params = [as_of.pk, LedgerEntry.Kind.TOP_UP, as_of.pk, account.pk]
    for currency, opened_at, balance_then, credited_then in fetch_all(_WALLETS_AS_OF, params):
        if balance_then is None and aware(opened_at) > as_of.created_at:  # type: ignore[operator]
            continue  # opened after the change
        # A wallet opened before the change and still empty then stood at zero.
        result.append(WalletBalance(Money(balance_then or 0, currency), aware(credited_then)))
    return result


# Each wallet as it stood right after an entry: its last entry up to it, and its last top-up up
# to it. Plain SQL, prepared (billing/sql.py): every balance:debit answers with it. Both reads
# are one step down an index (ledger_wallet_recent, ledger_wallet_top_ups), however long the
# history: the top-up one once walked back through every debit since the last top-up.
_WALLETS_AS_OF = f"""
SELECT w.currency, w.created_at,
  (SELECT e.balance_after FROM {LedgerEntry._meta.db_table} e
   WHERE e.wallet_id = w.id AND e.id <= %s ORDER BY e.id DESC LIMIT 1),
  (SELECT e.created_at FROM {LedgerEntry._meta.db_table} e
   WHERE e.wallet_id = w.id AND e.kind = %s AND e.id <= %s ORDER BY e.id DESC LIMIT 1)
FROM {Wallet._meta.db_table} w
WHERE w.billing_account_id = %s
ORDER BY w.id
"""  # noqa: S608 - names from the models, values as parameters


def wallets_for(*, account: BillingAccount) -> list[Wallet]:
    return list(Wallet.objects.filter(billing_account=account).order_by("id"))


def ledger_history(*, account: BillingAccount, kind: str = "") -> QuerySet[LedgerEntry]:
    """The account's ledger entries, newest first; one query per page whatever its length."""
    entries = (
        LedgerEntry.objects.filter(wallet__billing_account=account)
        .select_related("wallet", "actor_user", "actor_token")
        .order_by("-id")
    )
    if kind:
        entries = entries.filter(kind=kind)
    return entries


def wallet_daily_balances(*, wallet: Wallet, days: int = 30) -> list[tuple[date, int]]:
    """The wallet's balance at the end of each of the last `days` days (UTC), oldest first,
    today's being the balance now: one grouped query, walked back from the balance."""
    today = timezone.now().astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time(), tzinfo=UTC)
    moved = dict(
        LedgerEntry.objects.filter(wallet=wallet, created_at__gte=since)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .annotate(total=Sum("amount"))
        .values_list("day", "total")
    )
    balances, balance = [], wallet.balance
    for n in range(days):
        day = today - timedelta(days=n)
        balances.append((day, balance))
        balance -= moved.get(day, 0)
    return balances[::-1]
