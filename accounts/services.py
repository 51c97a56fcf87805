"""API tokens: made once, stored only as a SHA-256 hash, revocable."""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, User
from billing.audit import audit_log
from billing.sql import fetch_one, instance_from_row, model_columns

TOKEN_PREFIX = "dp_"  # noqa: S105 - a public marker, not a secret
# Writing last_used_at on every request would turn each API read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user: User, name: str, actor: User | None = None) -> tuple[ApiToken, str]:
    """Returns the token row and the raw token, which is never stored and cannot be shown again.
    Audited (`actor` None: the command line)."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name.strip() or "API token", prefix=raw[:10], token_hash=_hash(raw)
    )
    audit_log(
        actor=actor,
        action="api_token.create",
        target_user=user,
        token=token.prefix,
        name=token.name,
    )
    return token, raw


def api_token_authenticate(raw: str, *, permission: str = "") -> ApiToken | None:
    """The token's row with its user, in one read; with `permission` ("app_label.codename")
    the same read also answers whether the user holds it, kept as `token.permission_held`
    (see `token_user_has_perm`). The gateway's calls come many a second: each saved read counts."""
    params = api_token_params(raw, permission=permission)
    if params is None:
        return None
    return api_token_from_row(fetch_one(api_token_sql(), params), permission=permission)


def api_token_params(raw: str, *, permission: str = "") -> list[str] | None:
    """The parameters of `api_token_sql` for this raw token; None if it cannot be one."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    app_label, _, codename = permission.partition(".")
    return [app_label, codename, _hash(raw)]


def api_token_from_row(row: Sequence[Any] | None, *, permission: str = "") -> ApiToken | None:
    """The token `api_token_sql` found (None if its columns are empty); its last use noted."""
    if row is None or row[0] is None:
        return None
    token_fields = len(ApiToken._meta.concrete_fields)
    token = instance_from_row(ApiToken, row[:token_fields])
    token.user = instance_from_row(User, row[token_fields : api_token_width() - 1])
    held = row[api_token_width() - 1]
    token.permission_held = (permission, bool(held)) if permission else None  # type: ignore[attr-defined]
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def api_token_width() -> int:
    """How many columns `api_token_sql` answers: the token's, the user's, the permission."""
    return len(ApiToken._meta.concrete_fields) + len(User._meta.concrete_fields) + 1


def token_user_has_perm(token: ApiToken, permission: str) -> bool:
    """`token.user.has_perm(permission)`, answered from the authenticating read when it was
    asked there."""
    held = getattr(token, "permission_held", None)
    if held is not None and held[0] == permission:
        return bool(held[1])
    return token.user.has_perm(permission)


@functools.cache
def api_token_sql() -> str:
    """The live token of an active user, both rows whole, and whether the user holds the
    permission named by the first two parameters: as a superuser, directly, or through a group
    (ModelBackend's rules). Standard SQL, for PostgreSQL and SQLite alike."""
    token_columns, user_columns = model_columns(ApiToken, "t"), model_columns(User, "u")
    user_permissions = User.user_permissions.through._meta.db_table
    user_groups = User.groups.through._meta.db_table
    group_permissions = Group.permissions.through._meta.db_table
    return f"""
SELECT {", ".join(token_columns + user_columns)},
  u.is_superuser OR EXISTS (
    SELECT 1 FROM {Permission._meta.db_table} p
    JOIN {ContentType._meta.db_table} ct ON ct.id = p.content_type_id
    WHERE ct.app_label = %s AND p.codename = %s AND (
      p.id IN (SELECT up.permission_id FROM {user_permissions} up WHERE up.user_id = u.id)
      OR p.id IN (
        SELECT gp.permission_id FROM {group_permissions} gp
        JOIN {user_groups} ug ON ug.group_id = gp.group_id
        WHERE ug.user_id = u.id)))
FROM {ApiToken._meta.db_table} t
JOIN {User._meta.db_table} u ON u.id = t.user_id
WHERE t.token_hash = %s AND t.revoked_at IS NULL AND u.is_active
"""  # noqa: S608 - names from the models, values as parameters


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: User | None = None) -> bool:
    """Revoke once; audited. False if it was already revoked."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        audit_log(
            actor=actor,
            action="api_token.revoke",
            target_user=token.user,
            token=token.prefix,
            name=token.name,
        )
    return bool(revoked)
