"""The gateway's limits check (Apigee's MonetizationLimitsCheck): may this key call this
product now? Answers 200 with `allowed` and one reason; it never changes money."""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema

from billing.api.auth import GATEWAY_AUTH, gateway_check
from billing.api.schemas import ERRORS, MoneyOut, epoch_ms, text_check
from billing.limits.selectors import LimitsAnswer, Reason, limits_check
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
    auth=GATEWAY_AUTH,
)
def limits_check_view(request: HttpRequest, org: str, body: LimitsCheckIn) -> dict[str, Any]:
    gateway_check(request, org)
    answer = limits_check(
        consumer_key=text_check(body.consumerKey, "consumerKey"),
        product_name=text_check(body.apiproduct, "apiproduct"),
    )
    return _out(answer)


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
