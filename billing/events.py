"""Facts a lower area states after its commit, and the reactions registered for them.

A lower area never imports a higher one: it states a typed fact with `emit_after_commit`, and
`billing/reactions.py` (loaded by `BillingConfig.ready()`) is the one place that says who
reacts. Reactions run through `transaction.on_commit`, so they never run inside the transaction
that stated the fact, and at once when there is none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import transaction

E = TypeVar("E")

# Event type -> its reactions, in the order they were registered: (handler, robust).
_reactions: dict[type, list[tuple[Callable[[Any], None], bool]]] = {}


def react(event_type: type[E], handler: Callable[[E], None], *, robust: bool) -> None:
    """Run `handler(event)` after the commit of every transaction that emits `event_type`.
    `robust`: a failing handler is logged and does not fail the request that stated the fact."""
    _reactions.setdefault(event_type, []).append((handler, robust))


def emit_after_commit(event: object) -> None:
    for handler, robust in _reactions.get(type(event), ()):
        transaction.on_commit(_with(handler, event), robust=robust)


def _with(handler: Callable[[Any], None], event: object) -> Callable[[], None]:
    def reaction() -> None:
        handler(event)

    # Django names a robust hook that failed by its __qualname__: name the handler.
    reaction.__qualname__ = getattr(handler, "__qualname__", repr(handler))
    return reaction


def reactions() -> dict[type, list[tuple[Callable[[Any], None], bool]]]:
    """The wiring as registered: what the architecture test prints and checks."""
    return {event_type: list(handlers) for event_type, handlers in _reactions.items()}


def reactions_clear() -> None:
    """Forget every reaction (only `reactions.register` calls it, so that it can run twice)."""
    _reactions.clear()
