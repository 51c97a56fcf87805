"""Errors as Google APIs give them: `{"error": {"code", "message", "status"}}`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from ninja.errors import AuthenticationError, HttpError, ValidationError

from billing.exceptions import (
    AlreadyExists,
    BillingError,
    InsufficientFunds,
    NotFound,
    TransactionConflict,
)
from billing.money import MoneyError

logger = logging.getLogger(__name__)


STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.status = status or STATUS_NAMES.get(code, HTTPStatus(code).phrase.upper())


# As django-ninja renders its answers, so every answer under /v1/ reads the same.
JSON = "application/json; charset=utf-8"


def error_response(
    request: HttpRequest, code: int, message: str, status: str | None = None
) -> HttpResponse:
    err = ApiError(code, message, status)
    body = {"error": {"code": err.code, "message": err.message, "status": err.status}}
    return HttpResponse(json.dumps(body), status=code, content_type=JSON)


def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(request, exc.code, exc.message, exc.status)


def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    not_an_object = _body_not_an_object(request)
    if not_an_object:
        return error_response(request, 400, not_an_object)
    first = exc.errors[0] if exc.errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "payload"))
    message = first.get("msg", "Invalid request.")
    if first.get("type") in ("model_type", "dict_type"):  # pydantic would name our class
        message = f"must be a JSON object, not {_json_type(_sent_at(request, first['loc']))}"
    return error_response(request, 400, f"{where}: {message}" if where else message)


def _body_not_an_object(request: HttpRequest) -> str | None:
    """Why a body that is not a JSON object was refused; django-ninja reports it as fields
    missing ("Field required", with no field for an empty body)."""
    if request.method not in ("POST", "PUT"):
        return None
    if not request.body:
        return "The request body is empty: send a JSON object (Content-Type: application/json)."
    try:
        body = json.loads(request.body)
    except ValueError:
        return None
    if isinstance(body, dict):
        return None
    return f"The request body must be a JSON object, not {_json_type(body)}."


def _sent_at(request: HttpRequest, loc: Sequence[object]) -> object:
    """The value the body sent at a validation error's location (ninja's errors leave it out)."""
    try:
        value = json.loads(request.body)
        for part in loc:
            if part not in ("body", "payload"):
                value = value[part]  # type: ignore[index]
    except (ValueError, LookupError, TypeError):
        return None
    return value


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = error_response(
        request, 401, "A valid bearer token is required (Authorization: Bearer …)."
    )
    response["WWW-Authenticate"] = "Bearer"
    return response


def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error_response(request, exc.status_code, str(exc))


def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, 404, str(exc) or "Not found.")


def _bad_money(request: HttpRequest, exc: MoneyError) -> HttpResponse:
    return error_response(request, 400, str(exc))


def _database_unavailable(request: HttpRequest, exc: OperationalError) -> HttpResponse:
    """A lock timeout, deadlock, lost connection or a database that stopped answering. For a
    read nothing changed. For a change the answer cannot know: the change may have committed
    before the failure (the read of the answer, or the commit's reply, was what failed). So it
    says so, and how to find out safely: the same transactionId again is applied at most once
    and answers as the first time did."""
    logger.warning("API %s %s: database unavailable: %s", request.method, request.path, exc)
    if request.method in ("GET", "HEAD"):
        message = "The database did not answer; nothing was changed. Try again."
    else:
        message = "The database did not answer, so this change may or may not have been applied. "
        message += _how_to_retry(request.path)
    response = error_response(request, 503, message)
    response["Retry-After"] = "1"
    return response


def _how_to_retry(path: str) -> str:
    if path.endswith("/subscriptions"):
        return (
            "Send the same request again with the same Idempotency-Key header: it buys at most "
            "once, and if it had bought the answer says so (Idempotent-Replayed). Without a key, "
            "list the subscriptions before buying again."
        )
    if "/balance:" in path:
        return (
            "Send the same request again with the same transactionId: it is applied at most "
            "once, and if it was applied the answer says so (Idempotent-Replayed). Without a "
            "transactionId, read the balance before sending the change again."
        )
    return "Read it back (GET) before sending the change again."


def _billing_error(request: HttpRequest, exc: BillingError) -> HttpResponse:
    if isinstance(exc, InsufficientFunds):
        return error_response(request, 400, str(exc), "FAILED_PRECONDITION")
    if isinstance(exc, TransactionConflict | AlreadyExists):
        return error_response(request, 409, str(exc))
    if isinstance(exc, NotFound):
        return error_response(request, 404, str(exc))
    return error_response(request, 400, str(exc))


# Every exception the API answers for itself, and how (registered by billing/api/__init__.py).
HANDLERS: dict[type[Exception], Callable[[HttpRequest, Any], HttpResponse]] = {
    ApiError: _api_error,
    ValidationError: _validation_error,
    AuthenticationError: _unauthenticated,
    HttpError: _http_error,
    Http404: _not_found,
    MoneyError: _bad_money,
    OperationalError: _database_unavailable,
    BillingError: _billing_error,
}
