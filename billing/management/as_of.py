"""The `--as-of` option of the commands that book what fell due."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import CommandError
from django.utils import timezone


def as_of_option(text: str | None, *, what: str) -> datetime:
    """`--as-of`: an ISO time (UTC without an offset), not in the future; now if not given."""
    if not text:
        return timezone.now()
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--as-of {text!r} is not an ISO date or time.") from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    if at > timezone.now():
        raise CommandError(f"--as-of is in the future: {what} once they are due.")
    return at
