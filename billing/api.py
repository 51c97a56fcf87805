"""The Apigee-compatible REST API (seed 004), under /v1/. Handlers parse, check who is asking,
call a service and shape the answer; errors are Google-style JSON."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer
from pydantic import Field, StrictStr

from accounts.models import ApiToken, User
from accounts.services import api_token_authenticate
from billing.exceptions import BillingError, InsufficientFunds, TransactionConflict
from billing.ledger import (
    Actor,
    LedgerResult,
    transaction_id_refuse_reserved,
    wallet_credit,
    wallet_debit,
)
from billing.models import BillingAccount, BillingType, BillingTypeChange
from billing.money import MoneyError, money_from_apigee
from billing.selectors import billing_type_effective, wallets_balance
from billing.services import billing_account_get_or_create, billing_type_set, wallet_adjust

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


class TokenAuth(HttpBearer):
    def __call__(self, request: HttpRequest) -> ApiToken | None:
        # Not HttpBearer's: with DEBUG on it logs a header of any other scheme whole, so a token
        # sent as "Token dp_…" or bare would be written to the log in plain text.
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        return api_token_authenticate(token)


api = NinjaAPI(
    title="Developer portal monetization API",
    version="1",
    description="Apigee-compatible developer billing: monetization config and prepaid balances.",
    auth=TokenAuth(),
    urls_namespace="api_v1",
    openapi_url="/openapi.json",
    docs_url=None,  # the interactive docs load scripts from a CDN; the JSON document is enough
)


# ---- Schemas (field names as in seed 004) ----


# Typed loosely on purpose: billing.money validates these and explains what is wrong.
_INT64: Any = {"anyOf": [{"type": "string", "pattern": "^[+-]?[0-9]+$"}, {"type": "integer"}]}


class ApigeeMoney(Schema):
    currencyCode: Any = Field(
        ..., json_schema_extra={"type": "string", "pattern": "^[A-Z]{3}$"}, description="ISO 4217"
    )
    units: Any = Field("0", json_schema_extra=_INT64, description="Whole units (int64 string).")
    nanos: Any = Field(0, json_schema_extra=_INT64, description="-999999999..999999999")


class MoneyOut(Schema):
    currencyCode: str
    units: str
    nanos: int | None = None


class WalletOut(Schema):
    balance: MoneyOut
    lastCreditTime: str | None = Field(None, description="Epoch milliseconds, as a string.")


class BalanceOut(Schema):
    wallets: list[WalletOut]


# Only the document's: the handler refuses other values with its own message.
_BILLING_TYPES: Any = {"enum": BillingType.values}


class MonetizationConfig(Schema):
    billingType: StrictStr = Field(
        ..., description="PREPAID or POSTPAID", json_schema_extra=_BILLING_TYPES
    )


class CreditRequest(Schema):
    transactionAmount: ApigeeMoney
    transactionId: StrictStr = Field(..., min_length=1, max_length=255)


class AdjustRequest(Schema):
    adjustment: ApigeeMoney
    transactionId: StrictStr | None = Field(
        None, min_length=1, max_length=255, description="Optional idempotency key."
    )


class ErrorBody(Schema):
    code: int
    message: str
    status: str


class ErrorOut(Schema):
    error: ErrorBody


ERRORS: dict[int, Any] = {code: ErrorOut for code in (400, 401, 403, 404)}
DEVELOPER = "/organizations/{org}/developers/{email}"


# ---- Errors ----


def _error(
    request: HttpRequest, code: int, message: str, status: str | None = None
) -> HttpResponse:
    err = ApiError(code, message, status)
    body = {"error": {"code": err.code, "message": err.message, "status": err.status}}
    return api.create_response(request, body, status=code)


class JsonErrorsUnderV1:
    """Middleware: every error Django answers under /v1/ itself (unknown path or method, a body
    too large to read, a failure on the server) comes as the API's error JSON, not an HTML page,
    so that scripts can read every error the same way."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and request.path.startswith("/v1/")
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            message = self._message(request, response)
            json_response = _error(request, response.status_code, message)
            if response.has_header("Allow"):
                json_response["Allow"] = response["Allow"]
            return json_response
        return response

    @staticmethod
    def _message(request: HttpRequest, response: HttpResponse) -> str:
        if response.status_code == 404:
            return f"No API endpoint at {request.path}."
        if response.status_code == 405:
            return f"{request.method} is not allowed here; allowed: {response.get('Allow', '')}."
        if response.status_code == 400:
            # Django refused the request before the API saw it; say why where it is known.
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            try:
                too_large = int(request.META.get("CONTENT_LENGTH") or 0) > limit
            except ValueError:
                too_large = False
            if too_large:
                return f"The request could not be read: a body may hold at most {limit:,} bytes."
            return "The request could not be read."
        if response.status_code >= 500:
            return "The server failed to handle this request. Try again later."
        return f"{response.reason_phrase}."


class HeadAsGetUnderV1:
    """Middleware: HEAD is answered as GET without the body (RFC 9110 9.3.2), as the pages do.
    django-ninja routes HEAD to no operation, so uptime checks and link checkers got 405."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/v1/"):
            return self.get_response(request)
        if request.method != "HEAD":
            return self._allow_head(self.get_response(request))
        request.method = "GET"
        try:
            return self.get_response(request)
        finally:
            # The server leaves the body out of HEAD answers; it looks at the method again.
            request.method = "HEAD"

    @staticmethod
    def _allow_head(response: HttpResponse) -> HttpResponse:
        """A 405 lists every method the resource takes (RFC 9110 15.5.6): with GET, HEAD."""
        allowed = [method.strip() for method in response.get("Allow", "").split(",")]
        if response.status_code == 405 and "GET" in allowed and "HEAD" not in allowed:
            response["Allow"] = ", ".join([*allowed, "HEAD"])
        return response


@api.exception_handler(ApiError)
def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return _error(request, exc.code, exc.message, exc.status)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    not_an_object = _body_not_an_object(request)
    if not_an_object:
        return _error(request, 400, not_an_object)
    first = exc.errors[0] if exc.errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "payload"))
    message = first.get("msg", "Invalid request.")
    return _error(request, 400, f"{where}: {message}" if where else message)


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


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = _error(request, 401, "A valid bearer token is required (Authorization: Bearer …).")
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _error(request, exc.status_code, str(exc))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, str(exc) or "Not found.")


@api.exception_handler(MoneyError)
def _bad_money(request: HttpRequest, exc: MoneyError) -> HttpResponse:
    return _error(request, 400, str(exc))


@api.exception_handler(OperationalError)
def _database_unavailable(request: HttpRequest, exc: OperationalError) -> HttpResponse:
    """A lock timeout, deadlock, serialization failure or lost connection: the statement was
    rolled back, so a retry is safe, and the answer says so instead of a server bug's 500."""
    logger.warning("API %s %s: database unavailable: %s", request.method, request.path, exc)
    response = _error(
        request,
        503,
        "The request was not completed: the database is busy. Try again; a request with the "
        "same transactionId is applied at most once.",
    )
    response["Retry-After"] = "1"
    return response


@api.exception_handler(BillingError)
def _billing_error(request: HttpRequest, exc: BillingError) -> HttpResponse:
    if isinstance(exc, InsufficientFunds):
        return _error(request, 400, str(exc), "FAILED_PRECONDITION")
    if isinstance(exc, TransactionConflict):
        return _error(request, 409, str(exc))
    return _error(request, 400, str(exc))


# ---- Who may do what ----


def _developer(
    request: HttpRequest, org: str, email: str, permission: str, *, own: bool = False
) -> BillingAccount:
    """The developer's billing account, after checking the organisation and the token's rights.

    Rights are checked before existence, so a token without them learns nothing about who exists.
    """
    if org != settings.PORTAL_ORG:
        raise ApiError(404, f"Organization {org!r} not found.")
    if not email.isprintable() or len(email) > 254:
        # No stored address looks like this; PostgreSQL would refuse a NUL byte outright.
        raise ApiError(404, "Developer not found: that is not an email address.")
    caller: User = request.auth.user  # type: ignore[attr-defined]
    # Emails are stored in lower case (User.save): one exact match, the same in Python and SQL.
    # (The database's case-insensitive match folds more letters than str.lower(), e.g. "ſ".)
    email = email.lower()
    if not (own and caller.email == email) and not caller.has_perm(permission):
        raise ApiError(403, f"This token's user lacks the permission {permission!r}.")
    account = (
        BillingAccount.objects.select_related("user")
        .filter(user__email=email, user__is_staff=False, user__is_active=True)
        .first()
    )
    if account is not None:
        return account
    developer = User.objects.filter(email=email, is_staff=False, is_active=True).first()
    if developer is None:
        raise ApiError(404, f"Developer {email!r} not found in organization {org!r}.")
    return billing_account_get_or_create(user=developer)


def _actor(request: HttpRequest) -> Actor:
    return Actor.for_token(request.auth)  # type: ignore[attr-defined]


def _balance(account: BillingAccount, result: LedgerResult | None = None) -> dict[str, Any]:
    # After a change, the wallets as they stood right after its entry, both in the first answer
    # and in a replay: read "now", a debit landing between the change and the read made the
    # first answer differ from every replay of it.
    as_of = result.entry if result is not None else None
    return {"wallets": wallets_balance(account=account, as_of=as_of)}


def _answer(
    response: HttpResponse, account: BillingAccount, result: LedgerResult
) -> dict[str, Any]:
    """The balance after a ledger change; a replay says so in a header."""
    if result.replayed:
        response["Idempotent-Replayed"] = "true"
    return _balance(account, result)


# ---- Endpoints ----


@api.get(f"{DEVELOPER}/monetizationConfig", response={200: MonetizationConfig, **ERRORS})
def get_monetization_config(request: HttpRequest, org: str, email: str) -> dict[str, str]:
    account = _developer(request, org, email, "billing.view_any_prepaid_balance", own=True)
    return {"billingType": billing_type_effective(account=account)}


@api.put(f"{DEVELOPER}/monetizationConfig", response={200: MonetizationConfig, **ERRORS})
def update_monetization_config(
    request: HttpRequest, org: str, email: str, body: MonetizationConfig
) -> dict[str, str]:
    # The parameter is `body` as elsewhere: error messages leave that word out of a field's path.
    account = _developer(request, org, email, "billing.update_any_billing_type")
    if body.billingType not in BillingType.values:
        raise ApiError(400, "billingType must be PREPAID or POSTPAID.")
    billing_type_set(
        account=account,
        billing_type=body.billingType,
        changed_by=request.auth.user,  # type: ignore[attr-defined]
        source=BillingTypeChange.Source.API,
    )
    return {"billingType": body.billingType}


@api.get(f"{DEVELOPER}/balance", response={200: BalanceOut, **ERRORS}, exclude_none=True)
def get_balance(request: HttpRequest, org: str, email: str) -> dict[str, Any]:
    account = _developer(request, org, email, "billing.view_any_prepaid_balance", own=True)
    return _balance(account)


@api.post(
    f"{DEVELOPER}/balance:credit",
    response={200: BalanceOut, 409: ErrorOut, **ERRORS},
    exclude_none=True,
)
def credit_balance(
    request: HttpRequest, response: HttpResponse, org: str, email: str, body: CreditRequest
) -> dict[str, Any]:
    account = _developer(request, org, email, "billing.adjust_any_prepaid_balance")
    money = money_from_apigee(body.transactionAmount.dict(), "transactionAmount")
    transaction_id_refuse_reserved(body.transactionId)
    result = wallet_credit(
        account=account,
        money=money,
        transaction_id=body.transactionId,
        actor=_actor(request),
        memo="Credit through the API",
    )
    return _answer(response, account, result)


@api.post(
    f"{DEVELOPER}/balance:debit",
    response={200: BalanceOut, 409: ErrorOut, **ERRORS},
    exclude_none=True,
)
def debit_balance(
    request: HttpRequest, response: HttpResponse, org: str, email: str, body: CreditRequest
) -> dict[str, Any]:
    """Charge usage; a prepaid wallet without enough funds answers 400 FAILED_PRECONDITION."""
    account = _developer(request, org, email, "billing.debit_any_prepaid_balance")
    money = money_from_apigee(body.transactionAmount.dict(), "transactionAmount")
    transaction_id_refuse_reserved(body.transactionId)
    result = wallet_debit(
        account=account,
        money=money,
        transaction_id=body.transactionId,
        actor=_actor(request),
        memo="Usage charged through the API",
    )
    return _answer(response, account, result)


@api.post(
    f"{DEVELOPER}/balance:adjust",
    response={200: BalanceOut, 409: ErrorOut, **ERRORS},
    exclude_none=True,
)
def adjust_balance(
    request: HttpRequest, response: HttpResponse, org: str, email: str, body: AdjustRequest
) -> dict[str, Any]:
    """Seed 004's sign rule: a positive adjustment decreases the balance (under-charged),
    a negative one increases it (over-charged)."""
    account = _developer(request, org, email, "billing.adjust_any_prepaid_balance")
    adjustment = money_from_apigee(body.adjustment.dict(), "adjustment")
    result = wallet_adjust(
        account=account,
        change=-adjustment,
        actor=_actor(request),
        reason="Adjustment through the API",
        transaction_id=body.transactionId,
    )
    return _answer(response, account, result)
