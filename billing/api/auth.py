"""Bearer tokens for the API: each acts with its user's permissions (only the hash is stored)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer

from accounts.models import ApiToken
from accounts.services import (
    api_token_authenticate,
    api_token_from_row,
    api_token_params,
    api_token_sql,
    api_token_width,
    token_user_has_perm,
)
from billing.api.errors import ApiError
from billing.sql import fetch_one


class TokenAuth(HttpBearer):
    """Bearer tokens; `permission` (for the gateway's many calls a second) is checked in the
    same read that finds the token, and answered by `token_user_has_perm`."""

    def __init__(self, permission: str = "") -> None:
        super().__init__()
        self.permission = permission

    def __call__(self, request: HttpRequest) -> ApiToken | None:
        # Not HttpBearer's: with DEBUG on it logs a header of any other scheme whole, so a token
        # sent as "Token dp_…" or bare would be written to the log in plain text.
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        return api_token_authenticate(token, permission=self.permission)


class BearerOnly(TokenAuth):
    """For a call that reads its token in the same statement as its answer (the limits
    check): passes the bearer token on unread; the view must authenticate it and raise
    AuthenticationError when it is not a live token."""

    def authenticate(self, request: HttpRequest, token: str) -> str | None:  # type: ignore[override]
        return token or None


def read_with_token(
    raw: str, *, permission: str, sql: str, params: Sequence[Any]
) -> tuple[ApiToken | None, Sequence[Any]]:
    """The bearer token (None: not a live one) with whether its user holds `permission`, and
    the one row `sql` answers (its columns empty if it finds nothing), in one statement: the
    gateway's calls come many a second, and each round trip saved counts. `sql` is read
    whether or not the token is good; its answer must be used only if it is."""
    token_params = api_token_params(raw, permission=permission)
    if token_params is None:
        return None, ()
    values = fetch_one(_with_token(sql), [*token_params, *params])
    assert values is not None  # one row, whatever it finds
    width = api_token_width()
    return api_token_from_row(values[:width], permission=permission), values[width:]


@functools.cache
def _with_token(sql: str) -> str:
    return (
        f"WITH gate AS ({api_token_sql()}), asked AS ({sql}) "  # noqa: S608
        "SELECT gate.*, asked.* FROM (SELECT 1) AS one "
        "LEFT JOIN gate ON TRUE LEFT JOIN asked ON TRUE"
    )


REPORT_USAGE = "billing.report_usage"
GATEWAY_AUTH = TokenAuth(permission=REPORT_USAGE)
LIMITS_CHECK_AUTH = BearerOnly(permission=REPORT_USAGE)


def gateway_check(request: HttpRequest, org: str) -> None:
    """The gateway's calls (limitsCheck, usage:batch): the organisation, and "Report usage"."""
    if request.auth is None:  # type: ignore[attr-defined]
        raise AuthenticationError
    if org != settings.PORTAL_ORG:
        raise ApiError(404, f"Organization {org!r} not found.")
    if not token_user_has_perm(request.auth, REPORT_USAGE):  # type: ignore[attr-defined]
        raise ApiError(403, f"This token's user lacks the permission {REPORT_USAGE!r}.")
