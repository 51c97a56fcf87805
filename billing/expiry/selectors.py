"""Reads of credit lots: what expires when, and whether the lots add up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date

from django.db.models import OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from billing.expiry.lots import LotsOutOfStep, has_uncounted_entries, lots_as_of_now
from billing.models import BillingAccount, LedgerEntry, Wallet
from billing.money import Money


@dataclass(frozen=True)
class Expiring:
    """Credit left that expires on one day (UTC); `on` None: never."""

    left: Money
    on: date | None


def credits_expiring(*, account: BillingAccount) -> dict[str, list[Expiring]]:
    """Per currency, the credit left by the day it expires, the first to expire first."""
    expiring: dict[str, list[Expiring]] = {}
    for wallet in Wallet.objects.filter(billing_account=account).order_by("id"):
        by_day: dict[date | None, int] = {}
        for lot in lots_as_of_now(wallet_id=wallet.pk).open_lots():
            on = lot.expires_at.astimezone(UTC).date() if lot.expires_at else None
            by_day[on] = by_day.get(on, 0) + lot.remaining
        if by_day:
            expiring[wallet.currency] = [
                Expiring(Money(nanos, wallet.currency), on) for on, nanos in by_day.items()
            ]
    return expiring


@dataclass(frozen=True)
class LotsMismatch:
    wallet_id: int
    currency: str
    problem: str


def lots_mismatches() -> list[LotsMismatch]:
    """Wallets whose lots do not add up to their balance (its positive part): as stored,
    against the balance after the last entry counted; and counted on to now."""
    counted_balance = LedgerEntry.objects.filter(pk=OuterRef("lots_counted_through")).values(
        "balance_after"
    )[:1]
    wallets = Wallet.objects.annotate(
        lots_sum=Coalesce(Sum("lots__remaining"), Value(0)),
        counted_balance=Coalesce(Subquery(counted_balance), Value(0)),
        uncounted=has_uncounted_entries(),
    ).order_by("id")
    found = []
    for w in wallets.iterator(chunk_size=2000):
        if int(w.lots_sum) != max(int(w.counted_balance), 0):
            found.append(
                LotsMismatch(
                    w.pk,
                    w.currency,
                    f"its lots hold {Money(int(w.lots_sum), w.currency)} but the balance after "
                    f"entry {w.lots_counted_through} was "
                    f"{Money(int(w.counted_balance), w.currency)}",
                )
            )
            continue
        if not w.uncounted:  # the stored lots are the lots now: checked above
            continue
        try:
            book = lots_as_of_now(wallet_id=w.pk)
        except LotsOutOfStep as exc:
            found.append(LotsMismatch(w.pk, w.currency, str(exc)))
            continue
        # The balance after the last entry counted: debits going on meanwhile are no mismatch.
        balance = int(w.counted_balance) if book.balance is None else book.balance
        if book.total != max(balance, 0):
            found.append(
                LotsMismatch(
                    w.pk,
                    w.currency,
                    f"its lots hold {Money(book.total, w.currency)} but the balance was "
                    f"{Money(balance, w.currency)}",
                )
            )
    return found
