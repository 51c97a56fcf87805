"""Verify invariant 2 for every wallet: balance == sum of its ledger entries; that its credit
lots add up to its balance (when positive); and that every usage event names rows that are
there (its table keeps no database foreign keys). Exit 1 if not."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.expiry.selectors import lots_mismatches
from billing.ledger.selectors import ledger_mismatches
from billing.models import Wallet
from billing.money import Money
from billing.usage.selectors import usage_events_orphaned


class Command(BaseCommand):
    help = "Check that every wallet's balance equals the sum of its ledger entries."

    def handle(self, *args: Any, **options: Any) -> None:
        mismatches = ledger_mismatches()
        for m in mismatches:
            self.stderr.write(
                f"MISMATCH wallet {m.wallet_id} ({m.owner}, {m.currency}): balance "
                f"{Money(m.balance, m.currency)} but entries sum to "
                f"{Money(m.entries_sum, m.currency)}"
            )
        checked = Wallet.objects.count()
        if mismatches:
            self.stderr.write(f"{len(mismatches)} of {checked} wallets do not match their ledger.")
        orphaned = usage_events_orphaned()
        if orphaned:
            self.stderr.write(
                f"{orphaned} usage events name a subscription, rate plan or ledger entry "
                "that is not there."
            )
        lots = lots_mismatches()
        for lot in lots:
            self.stderr.write(f"LOTS wallet {lot.wallet_id} ({lot.currency}): {lot.problem}")
        if mismatches or orphaned or lots:
            raise SystemExit(1)
        self.stdout.write(f"OK: {checked} wallets match their ledger entries and credit lots.")
