"""Celery tasks: thin, idempotent, taking ids or plain data; the services do the work."""

from __future__ import annotations

from celery import shared_task
from django.db import connection


@shared_task(acks_late=True)
def offline_event_deliver(payload: str, signature: str) -> int:
    """Offline mode: hand a signed test-payment event to the webhook handler."""
    from billing.webhooks import webhook_receive

    try:
        status, _ = webhook_receive(payload=payload.encode(), signature=signature)
    finally:
        connection.close()  # also run in a short-lived thread offline: leave nothing open
    return status
