"""Reads of wallets and ledger entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from billing.models import BillingAccount, LedgerEntry, Wallet
from billing.money import Money


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
    wallets = Wallet.objects.filter(billing_account=account).order_by("id")
    if as_of is not None:
        upto = LedgerEntry.objects.filter(wallet=OuterRef("pk"), id__lte=as_of.pk).order_by("-id")
        wallets = wallets.annotate(
            balance_then=Subquery(upto.values("balance_after")[:1]),
            credit_then=Subquery(
                upto.filter(kind=LedgerEntry.Kind.TOP_UP).values("created_at")[:1]
            ),
        ).filter(  # a wallet opened before the change and still empty then stood at zero
            Q(balance_then__isnull=False) | Q(created_at__lte=as_of.created_at)
        )
    result = []
    for wallet in wallets:
        balance, credited = wallet.balance, wallet.last_credit_at
        if as_of is not None:
            # Annotated above with the wallet as it stood after `as_of`.
            balance, credited = getattr(wallet, "balance_then"), getattr(wallet, "credit_then")  # noqa: B009
            balance = balance or 0
        result.append(WalletBalance(Money(balance, wallet.currency), credited))
    return result


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
