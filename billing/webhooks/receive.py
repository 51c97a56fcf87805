"""Receive one delivery: verify its signature, store the event once, process it, answer."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import Any

import stripe
from django.db import connection, transaction
from django.utils import timezone

from billing.models import StripeEvent
from billing.notifications.admins import stripe_event_failed, stripe_event_set_aside
from billing.payments import stripe_gateway
from billing.webhooks.handlers import HANDLERS, NOT_OURS_PATIENCE, EventNotReady

logger = logging.getLogger(__name__)


TOLERANCE_SECONDS = 300


DONE = (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED)


def webhook_receive(*, payload: bytes, signature: str) -> tuple[int, str]:
    """Handle one delivery; returns (HTTP status, short message)."""
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), signature, stripe_gateway.webhook_secret(), TOLERANCE_SECONDS
        )
        event = json.loads(payload)
        event_id, event_type = event["id"], event["type"]
        obj = event["data"]["object"]
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        return 400, "Invalid or missing Stripe-Signature."
    except (ValueError, KeyError, TypeError):
        return 400, "Not a Stripe event."
    if not _event_id_valid(event_id) or "\x00" in str(event_type) or not isinstance(obj, dict):
        return 400, "Not a Stripe event."
    status = _event_status(event_id)
    if status in DONE:
        return 200, "Already processed."
    if status is None:
        _event_store(event_id, str(event_type), payload)
    return event_process(event_id=event_id, event_type=str(event_type), obj=obj)


def _event_id_valid(event_id: object) -> bool:
    """Stripe's ids are short and plain: one the event log cannot hold (longer than its
    column, or with a NUL byte, which PostgreSQL refuses) is no Stripe event's."""
    longest = StripeEvent._meta.get_field("id").max_length or 0
    return isinstance(event_id, str) and len(event_id) <= longest and "\x00" not in event_id


# The event log's bookkeeping runs on every delivery, Stripe's retries and duplicates included,
# so it is three plain statements: the ORM spent more CPU compiling them than PostgreSQL spent
# running them (bench/webhook.py).
_EVENTS = StripeEvent._meta.db_table


def _event_status(event_id: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status FROM {_EVENTS} WHERE id = %s", [event_id])  # noqa: S608
        row = cursor.fetchone()
    return row[0] if row else None


def _event_store(event_id: str, event_type: str, payload: bytes) -> None:
    """Store the verified event as received. The same event arriving at the same moment loses
    the race quietly: processing is idempotent, so both may go on."""
    json_param = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    text = payload.decode("utf-8")
    if connection.vendor == "postgresql" and "\\u0000" in text:
        # jsonb cannot hold U+0000: the stored copy has U+FFFD instead (the handlers read the
        # event as received).
        text = _JSON_NUL.sub(r"\1\\ufffd", text)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_EVENTS} (id, type, payload, status, error, attempts, received_at) "  # noqa: S608
            f"VALUES (%s, %s, {json_param}, %s, '', 0, %s) ON CONFLICT (id) DO NOTHING",
            [
                event_id,
                event_type[:100],
                text,
                StripeEvent.Status.RECEIVED,
                _now(),
            ],
        )


# A \u0000 escape in JSON text: a backslash not itself escaped, then u0000.
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _now() -> Any:
    return connection.ops.adapt_datetimefield_value(timezone.now())


def event_process(*, event_id: str, event_type: str, obj: dict[str, Any]) -> tuple[int, str]:
    """Run the handler and mark the event processed in one transaction."""
    handler = HANDLERS.get(event_type)
    if handler is None:
        _finish(event_id, StripeEvent.Status.IGNORED)
        return 200, f"Ignored: {event_type} is not handled."
    committed: list[bool] = []
    try:
        with transaction.atomic():
            # Registered first, so it runs before the handler's own hooks.
            transaction.on_commit(lambda: committed.append(True))
            handler(obj)
            _finish(event_id, StripeEvent.Status.PROCESSED)
    except EventNotReady as exc:
        if not exc.ours and _waiting_since(event_id) > NOT_OURS_PATIENCE:
            return _set_aside(event_id, event_type, exc)
        return _failed(event_id, event_type, exc)
    except Exception as exc:
        if committed:
            # What the handler hands on after its commit (a task for a worker) failed, e.g. the
            # broker is down: processing is idempotent, so Stripe's retry does it all again.
            _reopen(event_id)
        return _failed(event_id, event_type, exc)
    return 200, "Processed."


def _reopen(event_id: str) -> None:
    """Undo _finish: the event counts as not processed, and this delivery as not yet counted."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_EVENTS} SET status = %s, processed_at = NULL, "  # noqa: S608
            "attempts = attempts - 1 WHERE id = %s AND status = %s",
            [StripeEvent.Status.RECEIVED, event_id, StripeEvent.Status.PROCESSED],
        )


def _failed(event_id: str, event_type: str, exc: Exception) -> tuple[int, str]:
    done = ", ".join(["%s"] * len(DONE))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_EVENTS} SET status = %s, error = %s, attempts = attempts + 1 "  # noqa: S608
            f"WHERE id = %s AND status NOT IN ({done})",
            [StripeEvent.Status.FAILED, repr(exc)[:2000], event_id, *DONE],
        )
    if not isinstance(exc, EventNotReady):
        logger.exception("Stripe event %s (%s) failed", event_id, event_type)
        _notify_admins_once(event_id, event_type, exc)
    return 500, "Processing failed; Stripe will retry."


def _notify_admins_once(event_id: str, event_type: str, exc: Exception) -> None:
    """Stripe retries for days: tell the admins once per event, not at every retry. The claim is
    one conditional UPDATE, so of two deliveries failing at once exactly one emails; an email
    the mail server refused gives the claim back for the next failure."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_EVENTS} SET admins_notified = %s "  # noqa: S608
            "WHERE id = %s AND NOT admins_notified RETURNING id",
            [True, event_id],
        )
        claimed = cursor.fetchone() is not None
    if not claimed:
        return
    sent = stripe_event_failed(event_id=event_id, event_type=event_type, error=exc)
    if not sent:
        StripeEvent.objects.filter(pk=event_id).update(admins_notified=False)


def _waiting_since(event_id: str) -> timedelta:
    received = StripeEvent.objects.filter(pk=event_id).values_list("received_at", flat=True)
    return timezone.now() - (received.first() or timezone.now())


def _set_aside(event_id: str, event_type: str, exc: EventNotReady) -> tuple[int, str]:
    """Money left the Stripe account for a payment we cannot place: tell an admin, move none."""
    _finish(event_id, StripeEvent.Status.IGNORED, error=f"Set aside: {exc}")
    stripe_event_set_aside(
        event_id=event_id, event_type=event_type, reason=str(exc), waited=NOT_OURS_PATIENCE
    )
    return 200, "Set aside: not a portal payment."


def _finish(event_id: str, status: str, error: str = "") -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_EVENTS} SET status = %s, processed_at = %s, error = %s, "  # noqa: S608
            "attempts = attempts + 1 WHERE id = %s",
            [status, _now(), error[:2000], event_id],
        )
