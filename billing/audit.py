"""The append-only trail of admin and API actions: who did what to whom, with the details."""

from __future__ import annotations

from typing import Any

from accounts.models import User
from billing.models import AuditLogEntry


def audit_log(
    *, actor: User | None, action: str, target_user: User | None = None, **data: Any
) -> None:
    AuditLogEntry.objects.create(actor=actor, action=action, target_user=target_user, data=data)
