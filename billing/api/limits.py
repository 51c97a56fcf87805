"""The gateway's limits check (Apigee's MonetizationLimitsCheck): may this key call this
product now? Answers 200 with `allowed` and one reason; it never changes money."""

from __future__ import annotations

import json
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Router, Schema

from billing.api.auth import LIMITS_CHECK_AUTH, REPORT_USAGE, gateway_check, read_with_token
from billing.api.errors import JSON
from billing.api.schemas import ERRORS, MoneyOut, epoch_ms, text_check
from billing.limits.selectors import (
    LimitsAnswer,
    Reason,
    limits_answer,
    limits_params,
    limits_read,
)
from billing.money import money_to_apigee

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
    params = limits_params(
        text_check(body.consumerKey, "consumerKey"), text_check(body.apiproduct, "apiproduct")
    )
    request.auth, values = read_with_token(  # type: ignore[attr-defined]
        request.auth,  # type: ignore[attr-defined]
        permission=REPORT_USAGE,
        sql=limits_read(),
        params=params,
    )
    gateway_check(request, org)  # a token that is not a live one is a 401 here
    answer = limits_answer(values, timezone.now())
    # Built here to LimitsCheckOut's shape, so not validated again.
    return HttpResponse(json.dumps(_out(answer)), content_type=JSON)


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
