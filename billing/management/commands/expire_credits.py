"""Expire the credit that reached the end of its lifetime: what the hourly beat job does, for an
operator catching up after an outage (`--as-of` books what was due at that instant). Twice, or
twice at once, books nothing more."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from billing.expiry.services import credits_expire
from billing.management.as_of import as_of_option
from billing.notifications.expiry import credit_expiry_email


class Command(BaseCommand):
    help = "Expire every credit lot due by now (or by --as-of), once, and warn of those expiring."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="ISO time (UTC if no offset), e.g. 2026-12-01T00:00")

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = as_of_option(options.get("as_of"), what="credits expire")
        run = credits_expire(as_of=as_of)
        sent = 0
        for key in run.warnings:
            try:
                sent += credit_expiry_email(key=key)
            except OSError as exc:  # the mail server: the receipts sweep sends it later
                self.stderr.write(f"Could not send the warning {key} yet: {exc}")
        self.stdout.write(
            f"As of {as_of:%Y-%m-%d %H:%M} UTC: {_count(run.expired, 'credit lot')} expired, "
            f"{_count(len(run.booked), 'expiry entry', 'expiry entries')} booked, "
            f"{_count(sent, 'expiry warning')} sent."
        )


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"
