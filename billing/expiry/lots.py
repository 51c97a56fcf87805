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
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from billing.billing_accounts.selectors import organization_settings_get
from billing.exceptions import BillingError
from billing.locks import wallet_lots_lock
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
    # What refunds and disputes of this lot's payment took, from which lots, in order (net of
    # what was given back): a give-back returns there, the last taken first.
    took: list[list[Any]] = field(default_factory=list, compare=False)
    changed: bool = field(default=False, compare=False)

    @classmethod
    def of(cls, row: CreditLot) -> Lot:
        lot = cls(
            row.pk, row.amount, row.remaining, row.created_at, row.expires_at,
            row.credit_entry_id, row.given_back_to_id, row.expired_at, row.expiry_entry_id,
        )  # fmt: skip
        lot.took = [list(pair) for pair in row.taken_back]  # [lot id, nanos]: resolved by _book
        return lot

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
        for lot in self.lots:  # the lots a refund took from, as objects (new ones have no id)
            lot.took = [[self.by_id[source], nanos] for source, nanos in lot.took]
        self.lifetime = timedelta(days=lifetime_days) if lifetime_days else None
        self.balance: int | None = None  # after the last entry counted here, if any

    def count(self, entry: Entry) -> None:
        self.balance = entry.balance_after
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
        if own is None:  # a credit: a lot of its own
            expires_at = entry.created_at + self.lifetime if self.lifetime else None
            self._open(entry, nanos, expires_at, given_back_to=None)
            return
        # Given back (a failed refund, a won dispute): to the lots its payment's refunds and
        # disputes took from, the last taken first; anything more to its own lot.
        while own.took and nanos:
            source, taken = own.took[-1]
            back = min(taken, nanos)
            self._give(entry, source, back)
            nanos -= back
            if back == taken:
                own.took.pop()
            else:
                own.took[-1][1] = taken - back
            own.changed = True
        if nanos:
            self._give(entry, own, nanos)

    def _give(self, entry: Entry, lot: Lot, nanos: int) -> None:
        """Money back into `lot`; if it has expired, into a new lot that expires as it did (the
        money would have expired with it)."""
        if lot.expired_at is None:
            lot.remaining += nanos
            lot.changed = True
        else:
            self._open(entry, nanos, lot.expires_at, given_back_to=lot)

    def _open(
        self, entry: Entry, nanos: int, expires_at: datetime | None, given_back_to: Lot | None
    ) -> None:
        self.lots.append(
            Lot(
                id=None,
                amount=nanos,
                remaining=nanos,
                created_at=entry.created_at,
                expires_at=expires_at,
                credit_entry_id=entry.id,
                given_back_to_id=given_back_to.id if given_back_to is not None else None,
                changed=True,
            )
        )

    def _debit(self, entry: Entry, nanos: int) -> None:
        own = self.by_id.get(entry.lot_id) if entry.lot_id else None
        others = sorted(
            (lot for lot in self.lots if lot.remaining > 0 and lot is not own), key=Lot.first_out
        )
        # A refund or dispute takes its own lot first; what it takes is kept, to give back.
        records = own is not None and entry.kind in (Kind.REFUND, Kind.DISPUTE)
        for lot in ([own] if own is not None else []) + others:
            if not nanos:
                break
            taken = lot.take(nanos)
            nanos -= taken
            if records and taken:
                assert own is not None
                own.took.append([lot, taken])
                own.changed = True
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


def has_uncounted_entries() -> Exists:
    """For a wallet queryset: whether the wallet has entries its lots do not count yet."""
    return Exists(
        LedgerEntry.objects.filter(wallet=OuterRef("pk"), id__gt=OuterRef("lots_counted_through"))
    )


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
    rows = CreditLot.objects.filter(Q(remaining__gt=0) | Q(pk__in=named), wallet_id=wallet_id)
    lots = [Lot.of(row) for row in rows]
    known = {lot.id for lot in lots}
    sources = {source for lot in lots for source, _ in lot.took} - known
    lots += [Lot.of(row) for row in CreditLot.objects.filter(pk__in=sources)]
    book = LotBook(lots, organization_settings_get().credit_lifetime_days)
    for entry in entries:
        book.count(entry)
    return book, entries


def lots_count(*, wallet_id: int) -> LotBook:
    """Bring the wallet's lots up to date with its ledger, under its row lock (so two counts
    never count an entry twice), and return them. Inside the caller's transaction if any."""
    with transaction.atomic():
        counted_through = wallet_lots_lock(wallet_id=wallet_id)
        book, entries = _book(wallet_id, counted_through)
        if entries:
            _save(wallet_id, book)
            Wallet.objects.filter(pk=wallet_id).update(lots_counted_through=entries[-1].id)
    return book


def _save(wallet_id: int, book: LotBook) -> None:
    new = [lot for lot in book.lots if lot.id is None]
    changed = [lot for lot in book.lots if lot.changed and lot.id is not None]
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
    changed += [lot for lot in new if lot.took]
    fields = ("remaining", "expired_at", "expiry_entry_id", "taken_back")
    CreditLot.objects.bulk_update(
        [
            CreditLot(
                pk=lot.id,
                remaining=lot.remaining,
                expired_at=lot.expired_at,
                expiry_entry_id=lot.expiry_entry_id,
                taken_back=[[source.id, nanos] for source, nanos in lot.took],
            )
            for lot in changed
        ],
        fields,
    )


def lots_as_of_now(*, wallet_id: int) -> LotBook:
    """The wallet's lots as they are now, for reading: counted in memory from the stored count,
    without the row lock or a write. The stored lots and their checkpoint change together, so
    a count that committed while this read is detected by the checkpoint and read again."""
    for _attempt in range(5):
        through = _counted_through(wallet_id)
        try:
            book, _entries = _book(wallet_id, through)
        except LotsOutOfStep:
            if _counted_through(wallet_id) == through:
                raise  # out of step indeed, not a count that committed meanwhile
            continue
        if _counted_through(wallet_id) == through:
            return book
    return lots_count(wallet_id=wallet_id)  # busy: count under the lock instead


def _counted_through(wallet_id: int) -> int:
    return Wallet.objects.filter(pk=wallet_id).values_list("lots_counted_through", flat=True)[0]
