"""Notifications that go out once and are not lost (SentNotification): owed in the
transaction that makes them due, claimed by one conditional UPDATE, marked sent after."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from billing.models import SentNotification

# Far beyond a task's time limit: a claim this old without a sent email was left by a sender
# that died, and another may take it over.
CLAIM_TIMEOUT = timedelta(minutes=15)


def notification_owe(*, key: str, kind: str, reference: str) -> None:
    """Record, in the transaction that makes it due, that this notification must be sent.
    Owing it again changes nothing (and does not fail the transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(_OWE, [key, kind, reference, _now()])


# Every credit runs it, inside the webhook's transaction: a plain statement, as the event log's
# are (the ORM spent more CPU compiling it than PostgreSQL spent running it: bench/webhook.py).
_OWE = (
    f"INSERT INTO {SentNotification._meta.db_table} "  # noqa: S608 - the model's table
    "(key, kind, reference, recipient, created_at) VALUES (%s, %s, %s, '', %s) "
    "ON CONFLICT (key) DO NOTHING"
)


def _now() -> Any:
    return connection.ops.adapt_datetimefield_value(timezone.now())


def notification_send_once(*, key: str, recipient: str, send: Callable[[], None]) -> bool:
    """Run `send` unless the notification is sent or being sent; True if this call sent it.
    When `send` raises (the mail server refused), the claim is given back and the error
    propagates, so that a retry sends it."""
    if not notification_claim(key=key):
        return False
    try:
        send()
    except BaseException:
        notification_release(key=key)
        raise
    SentNotification.objects.filter(key=key).update(sent_at=timezone.now(), recipient=recipient)
    return True


def _free(now: datetime) -> Q:
    """Owed, and nobody is sending it: never claimed, given back, or its sender died."""
    unclaimed = Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_TIMEOUT)
    return Q(sent_at__isnull=True) & unclaimed


def notification_claim(*, key: str) -> bool:
    """The right to send it. One conditional UPDATE: of two senders at once exactly one
    changes the row (the other, waiting for the row, finds it claimed)."""
    now = timezone.now()
    return SentNotification.objects.filter(_free(now), key=key).update(claimed_at=now) == 1


def notification_release(*, key: str) -> None:
    SentNotification.objects.filter(key=key, sent_at__isnull=True).update(claimed_at=None)


def notification_unsent(*, key: str) -> bool:
    """Owed and free to send: worth the work of preparing it."""
    return SentNotification.objects.filter(_free(timezone.now()), key=key).exists()


def notifications_unsent(
    *, created_after: datetime, created_before: datetime
) -> list[tuple[str, str]]:
    """(kind, reference) of the notifications owed in that time and free to send, oldest
    first: those whose sender's task was lost, gave up, or died."""
    owed = SentNotification.objects.filter(
        _free(timezone.now()), created_at__gt=created_after, created_at__lt=created_before
    )
    return list(owed.order_by("created_at", "id").values_list("kind", "reference"))
