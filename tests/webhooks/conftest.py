"""Helpers for the webhook tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from billing.webhooks.handlers import HANDLERS
from billing.webhooks.receive import webhook_receive
from tests.fakes.stripe_server import signed_event
from tests.fixtures.stripe import WEBHOOK_SECRET

FAILING_TYPE = "payment_intent.succeeded"


@pytest.fixture
def deliver_failing(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], tuple[int, str]]:
    """Deliver a signed payment_intent.succeeded event with the given id to the webhook
    (webhook_receive), its processing failing with RuntimeError("boom") as a crashing handler
    would; returns the webhook's (HTTP status, message)."""
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET

    def crash(obj: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(HANDLERS, FAILING_TYPE, crash)

    def deliver(event_id: str) -> tuple[int, str]:
        event = {"id": event_id, "object": "event", "type": FAILING_TYPE, "data": {"object": {}}}
        payload, signature = signed_event(event, WEBHOOK_SECRET)
        return webhook_receive(payload=payload, signature=signature)

    return deliver
