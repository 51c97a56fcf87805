"""Facts about Add credit, stated after commit (see billing/events.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CurrencyWithdrawn:
    """The organisation no longer offers Add credit in this currency."""

    currency: str
