"""The gateway's limits check (Apigee's MonetizationLimitsCheck): may this key call this
product now? Answers 200 with `allowed` and one reason; it never changes money."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Router, Schema

from accounts.models import ApiToken
from accounts.services import api_token_from_row, api_token_params, api_token_sql, api_token_width
from billing.api.auth import LIMITS_CHECK_AUTH, REPORT_USAGE, gateway_check
from billing.api.schemas import ERRORS, MoneyOut, epoch_ms, text_check
from billing.limits.selectors import (
    LimitsAnswer,
    Reason,
    limits_answer,
    limits_params,
    limits_read,
)
from billing.money import money_to_apigee
from billing.sql import fetch_one

router = Router()
REASONS = [value for name, value in vars(Reason).items() if name.isupper()]


class LimitsCheckIn(Schema):
    consumerKey: str = Field(..., max_length=200)
    apiproduct: str = Field(..., max_length=100)

    model_config = {"extra": "forbid"}


class QuotaOut(Schema):
    limit: str
    used: str
    resetTime: str = Field(..., description="Epoch milliseconds, as a string.")


class LimitsCheckOut(Schema):
    allowed: bool
    reason: Literal[tuple(REASONS)]  # type: ignore[valid-type]
    developer: str | None = None
    subscription: str | None = None
    balance: MoneyOut | None = None
    quota: QuotaOut | None = None


@router.post(
    "/organizations/{org}/limitsCheck",
    response={200: LimitsCheckOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_limits_check",
    auth=LIMITS_CHECK_AUTH,
)
def limits_check_view(request: HttpRequest, org: str, body: LimitsCheckIn) -> HttpResponse:
    # The token and its right are read by the limits check's own statement (one round trip).
    checked = gateway_limits_check(
        token=request.auth,  # type: ignore[attr-defined]
        permission=REPORT_USAGE,
        consumer_key=text_check(body.consumerKey, "consumerKey"),
        product_name=text_check(body.apiproduct, "apiproduct"),
    )
    request.auth = checked.token  # type: ignore[attr-defined]
    gateway_check(request, org)
    assert checked.answer is not None  # a live token has its answer
    # Built here to LimitsCheckOut's shape, so not validated again.
    return HttpResponse(json.dumps(_out(checked.answer)), content_type="application/json")


def _out(answer: LimitsAnswer) -> dict[str, Any]:
    out: dict[str, Any] = {"allowed": answer.allowed, "reason": answer.reason}
    if answer.developer:
        out["developer"] = answer.developer
    if answer.subscription:
        out["subscription"] = answer.subscription
    if answer.balance is not None:
        out["balance"] = money_to_apigee(answer.balance)
    if answer.quota is not None:
        out["quota"] = {
            "limit": str(answer.quota.limit),
            "used": str(answer.quota.used),
            "resetTime": epoch_ms(answer.quota.reset_time),
        }
    return out


@dataclass(frozen=True)
class GatewayCheck:
    """The gateway's token (None: not a live token) and, if it is one, the answer."""

    token: ApiToken | None
    answer: LimitsAnswer | None = None


def gateway_limits_check(
    *, token: str, permission: str, consumer_key: str, product_name: str
) -> GatewayCheck:
    """The limits check, with the gateway's API token and whether its user holds `permission`
    found by the same statement: one round trip a call. The answer is read whether or not
    the token is good, and only returned if it is."""
    token_params = api_token_params(token, permission=permission)
    if token_params is None:
        return GatewayCheck(None)
    values = fetch_one(_gateway_sql(), [*token_params, *limits_params(consumer_key, product_name)])
    assert values is not None  # the statement answers one row, whatever it finds
    width = api_token_width()
    found = api_token_from_row(values[:width], permission=permission)
    if found is None:
        return GatewayCheck(None)
    return GatewayCheck(found, limits_answer(values[width:], timezone.now()))


@functools.cache
def _gateway_sql() -> str:
    """The token's read (accounts) and the limits read (billing.limits), as one statement of
    one row: empty columns for what is not there."""
    return (
        f"WITH gate AS ({api_token_sql()}), checked AS ({limits_read()}) "  # noqa: S608
        "SELECT gate.*, checked.* FROM (SELECT 1) AS one "
        "LEFT JOIN gate ON TRUE LEFT JOIN checked ON TRUE"
    )
