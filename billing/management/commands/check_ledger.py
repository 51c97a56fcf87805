"""Verify invariant 2 for every wallet: balance == sum of its ledger entries. Exit 1 if not."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.ledger.selectors import ledger_mismatches
from billing.models import Wallet
from billing.money import Money


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
            raise SystemExit(1)
        self.stdout.write(f"OK: {checked} wallets match their ledger entries.")
