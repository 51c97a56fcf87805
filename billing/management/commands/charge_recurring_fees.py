"""Charge the plan fees that fell due: what the hourly beat job does, for an operator catching
up after an outage (`--as-of` books what was due at that instant). Twice changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.notifications.fees import fee_unpaid_email
from billing.subscriptions.services import recurring_fees_charge


def _as_of(text: str | None) -> datetime:
    if not text:
        return timezone.now()
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--as-of {text!r} is not an ISO date or time.") from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    if at > timezone.now():
        raise CommandError("--as-of is in the future: fees are charged once they are due.")
    return at


class Command(BaseCommand):
    help = "Charge every plan fee due by now (or by --as-of), once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="ISO time (UTC if no offset), e.g. 2026-12-01T00:00")

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = _as_of(options.get("as_of"))
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
