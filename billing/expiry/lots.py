"""Credit lots, counted from the ledger after the fact.

Every credit is a lot that expires (`CreditLot`). Counting lots on every debit would add a write
per lot to the hot path, and one statement cannot do it safely: a debit waiting for the wallet's
row would count from lots it read before the wait. So debits write nothing here; the lots are
brought up to date from the ledger's entries, in their order, under the wallet's row lock, by
whoever needs them (expiry, refunds, the pages). The result is the same as counting each debit
as it happened, because each entry says the balance after it:

- what an entry adds to or takes from the lots is the change of the positive part of the
  balance: a credit first pays what the wallet owes, and a debit past zero takes nothing more
  (a negative balance is not a lot);
- a credit opens a lot expiring `credit_lifetime_days` after it; money given back (a failed
  refund, a won dispute) returns to the lot it came from, or opens a lot with that lot's expiry
  if it has expired;
- a debit takes from the lot that expires first, then the oldest; a refund, dispute or expiry
  takes from its own lot (`LedgerEntry.lot`) first.

So the lots of a wallet always add up to its balance when positive, and to zero otherwise
(`check_ledger` checks it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction

from billing.billing_accounts.selectors import organization_settings_get
from billing.exceptions import BillingError
from billing.models import CreditLot, LedgerEntry, Wallet

Kind = LedgerEntry.Kind


class LotsOutOfStep(BillingError):
    """The lots no longer add up to the balance: a bug or a hand-edited row (check_ledger)."""


@dataclass(frozen=True)
class Entry:
    id: int
    kind: str
    amount: int
    balance_after: int
    created_at: datetime
    lot_id: int | None

    @property
    def lots_change(self) -> int:
        """What the entry adds to (or takes from) the lots: the change of the positive part
        of the balance."""
        before = self.balance_after - self.amount
        return max(self.balance_after, 0) - max(before, 0)


ENTRY_FIELDS = ("id", "kind", "amount", "balance_after", "created_at", "lot_id")


@dataclass
class Lot:
    id: int | None
    amount: int
    remaining: int
    created_at: datetime
    expires_at: datetime | None
    credit_entry_id: int | None = None
    given_back_to_id: int | None = None
    expired_at: datetime | None = None
    expiry_entry_id: int | None = None
    changed: bool = field(default=False, compare=False)

    @classmethod
    def of(cls, row: CreditLot) -> Lot:
        return cls(
            row.pk, row.amount, row.remaining, row.created_at, row.expires_at,
            row.credit_entry_id, row.given_back_to_id, row.expired_at, row.expiry_entry_id,
        )  # fmt: skip

    def first_out(self) -> tuple[bool, datetime, datetime, float]:
        """Debits take the lot that expires first, then the oldest."""
        never = self.expires_at is None
        return (never, self.expires_at or self.created_at, self.created_at, self.id or float("inf"))

    def take(self, nanos: int) -> int:
        taken = min(self.remaining, nanos)
        if taken:
            self.remaining -= taken
            self.changed = True
        return taken


class LotBook:
    """A wallet's lots as counted through some entry, and the counting of the next ones."""

    def __init__(self, lots: Iterable[Lot], lifetime_days: int) -> None:
        self.lots = list(lots)
        self.by_id = {lot.id: lot for lot in self.lots if lot.id is not None}
        self.lifetime = timedelta(days=lifetime_days) if lifetime_days else None

    def count(self, entry: Entry) -> None:
        change = entry.lots_change
        if change > 0:
            self._credit(entry, change)
        elif change < 0:
            self._debit(entry, -change)
        if entry.kind == Kind.EXPIRY and entry.lot_id in self.by_id:
            lot = self.by_id[entry.lot_id]
            lot.expired_at, lot.expiry_entry_id, lot.changed = entry.created_at, entry.id, True

    def _credit(self, entry: Entry, nanos: int) -> None:
        own = self.by_id.get(entry.lot_id) if entry.lot_id else None
        if own is not None and own.expired_at is None:
            own.remaining += nanos
            own.changed = True
            return
        if own is not None:
            expires_at = own.expires_at
        else:
            expires_at = entry.created_at + self.lifetime if self.lifetime else None
        self.lots.append(
            Lot(
                id=None,
                amount=nanos,
                remaining=nanos,
                created_at=entry.created_at,
                expires_at=expires_at,
                credit_entry_id=entry.id,
                given_back_to_id=own.id if own is not None else None,
                changed=True,
            )
        )

    def _debit(self, entry: Entry, nanos: int) -> None:
        own = self.by_id.get(entry.lot_id) if entry.lot_id else None
        if own is not None:
            nanos -= own.take(nanos)
        others = (lot for lot in self.lots if lot.remaining > 0 and lot is not own)
        for lot in sorted(others, key=Lot.first_out):
            if not nanos:
                break
            nanos -= lot.take(nanos)
        if nanos:
            raise LotsOutOfStep(
                f"Ledger entry {entry.id} takes {nanos} nanos more than the wallet's lots hold."
            )

    @property
    def total(self) -> int:
        return sum(lot.remaining for lot in self.lots)

    def open_lots(self) -> list[Lot]:
        """The lots with money left, the one that expires first first."""
        return sorted((lot for lot in self.lots if lot.remaining > 0), key=Lot.first_out)


def _entries_after(wallet_id: int, entry_id: int) -> list[Entry]:
    rows = (
        LedgerEntry.objects.filter(wallet_id=wallet_id, id__gt=entry_id)
        .order_by("id")
        .values_list(*ENTRY_FIELDS)
    )
    return [Entry(*row) for row in rows]


def _book(wallet_id: int, counted_through: int) -> tuple[LotBook, list[Entry]]:
    entries = _entries_after(wallet_id, counted_through)
    named = {entry.lot_id for entry in entries if entry.lot_id}
    # The lots with money left, and those the new entries name (spent or expired ones too).
    rows = CreditLot.objects.filter(wallet_id=wallet_id).filter(
        remaining__gt=0
    ) | CreditLot.objects.filter(wallet_id=wallet_id, pk__in=named)
    book = LotBook(map(Lot.of, rows.distinct()), organization_settings_get().credit_lifetime_days)
    for entry in entries:
        book.count(entry)
    return book, entries


def lots_count(*, wallet_id: int) -> LotBook:
    """Bring the wallet's lots up to date with its ledger, under its row lock (so two counts
    never count an entry twice), and return them. Inside the caller's transaction if any."""
    with transaction.atomic():
        wallet = Wallet.objects.select_for_update().only("lots_counted_through").get(pk=wallet_id)
        book, entries = _book(wallet_id, wallet.lots_counted_through)
        if entries:
            _save(wallet_id, book)
            Wallet.objects.filter(pk=wallet_id).update(lots_counted_through=entries[-1].id)
    return book


def _save(wallet_id: int, book: LotBook) -> None:
    fields = ("remaining", "expired_at", "expiry_entry_id")
    changed = [lot for lot in book.lots if lot.changed and lot.id is not None]
    CreditLot.objects.bulk_update(
        [CreditLot(pk=lot.id, **{f: getattr(lot, f) for f in fields}) for lot in changed], fields
    )
    new = [lot for lot in book.lots if lot.id is None]
    created = CreditLot.objects.bulk_create(
        [
            CreditLot(
                wallet_id=wallet_id,
                amount=lot.amount,
                remaining=lot.remaining,
                created_at=lot.created_at,
                expires_at=lot.expires_at,
                credit_entry_id=lot.credit_entry_id,
                given_back_to_id=lot.given_back_to_id,
                expired_at=lot.expired_at,
                expiry_entry_id=lot.expiry_entry_id,
            )
            for lot in new
        ]
    )
    for lot, row in zip(new, created, strict=True):
        lot.id = row.pk
        book.by_id[row.pk] = lot


def lots_as_of_now(*, wallet_id: int) -> LotBook:
    """The wallet's lots as they are now, for reading: counted in memory from the stored count,
    without the row lock or a write. The stored lots and their checkpoint change together, so
    a count that committed while this read is detected by the checkpoint and read again."""
    for _attempt in range(5):
        through = _counted_through(wallet_id)
        book, _entries = _book(wallet_id, through)
        if _counted_through(wallet_id) == through:
            return book
    return lots_count(wallet_id=wallet_id)  # busy: count under the lock instead


def _counted_through(wallet_id: int) -> int:
    return Wallet.objects.filter(pk=wallet_id).values_list("lots_counted_through", flat=True)[0]
