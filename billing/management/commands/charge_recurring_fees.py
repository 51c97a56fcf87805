"""Charge the plan fees that fell due: what the hourly beat job does, for an operator catching
up after an outage (`--as-of` books what was due at that instant). Twice changes nothing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from billing.management.as_of import as_of_option
from billing.notifications.fees import fee_unpaid_email
from billing.subscriptions.services import recurring_fees_charge


class Command(BaseCommand):
    help = "Charge every plan fee due by now (or by --as-of), once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="ISO time (UTC if no offset), e.g. 2026-12-01T00:00")

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = as_of_option(options.get("as_of"), what="fees are charged")
        run = recurring_fees_charge(as_of=as_of)
        for transaction_id in run.unpaid:
            try:
                fee_unpaid_email(transaction_id=transaction_id)
            except OSError as exc:  # the mail server: the receipts sweep sends it later
                self.stderr.write(f"Could not email about {transaction_id} yet: {exc}")
        self.stdout.write(
            f"As of {as_of:%Y-%m-%d %H:%M} UTC: {run.subscriptions} subscriptions with fees due, "
            f"{run.charged} fees charged, {len(run.unpaid)} unpaid."
        )
