"""The API's request and answer shapes (field names as in seed 004 and Apigee X), and the
parsing of Apigee X's scalars: int64 numbers and epoch milliseconds, sent as strings."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from billing.api.errors import ApiError
from billing.ledger.selectors import WalletBalance
from billing.models import ApiProduct, BillingType, RatePlan, Subscription
from billing.money import Money, money_to_apigee

# Typed loosely on purpose: billing.money validates these and explains what is wrong.
_INT64: Any = {"anyOf": [{"type": "string", "pattern": "^[+-]?[0-9]+$"}, {"type": "integer"}]}


# Request bodies are plain pydantic models: ninja's Schema adds a wrapping validator that reads
# Django model attributes, which a JSON body never needs.
class ApigeeMoney(BaseModel):
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


class CreditRequest(BaseModel):
    transactionAmount: ApigeeMoney
    transactionId: StrictStr = Field(..., min_length=1, max_length=255)


class AdjustRequest(BaseModel):
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
# For the writes that can find their thing already there (409 ALREADY_EXISTS).
ERRORS_AND_CONFLICT: dict[int, Any] = {**ERRORS, 409: ErrorOut}


def wallets_out(wallets: list[WalletBalance]) -> list[dict[str, Any]]:
    """Seed 004's `wallets` list: Money as `{currencyCode, units, nanos}`, the last credit in
    epoch milliseconds, as a string."""
    shaped = []
    for wallet in wallets:
        item: dict[str, Any] = {"balance": money_to_apigee(wallet.balance)}
        if wallet.last_credit_at:
            item["lastCreditTime"] = str(int(wallet.last_credit_at.timestamp() * 1000))
        shaped.append(item)
    return shaped


# ---- Shared parsing of Apigee X scalars (int64 and times as strings) ----

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // timedelta(
    milliseconds=1
)
_INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1  # a quota or a fee frequency is stored in an int32 column
_WHOLE = re.compile(r"[+-]?[0-9]{1,20}")
# Epoch milliseconds: Apigee X sends them as int64 strings; a JSON number is taken too.
_EPOCH_MS: Any = {
    "anyOf": [
        {"type": "string", "pattern": "^[0-9]{1,14}$"},
        {"type": "integer", "minimum": 0, "maximum": _LAST_MS},
    ]
}
# What the handlers refuse in text, said in the document too: control characters (Cc) anywhere,
# and, in a name shown to people, nothing but spaces.
_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
_LINE: Any = {
    "pattern": f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$",
    "minLength": 1,
    "maxLength": 200,
}
_TEXT: Any = {"pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"}
_SLUG: Any = {"pattern": "^[A-Za-z0-9_-]{1,100}$"}


def _whole(minimum: int, maximum: int) -> Any:
    """A whole number as Google's JSON sends an int64: a number, or its digits as a string."""
    digits = len(str(maximum)) - 1  # a string pattern can only bound the number of digits
    pattern = f"^[1-9][0-9]{{0,{digits - 1}}}$" if minimum else f"^[0-9]{{1,{digits}}}$"
    return {
        "anyOf": [
            {"type": "integer", "minimum": minimum, "maximum": maximum},
            {"type": "string", "pattern": pattern},
        ]
    }


def int_parse(value: object, field: str, *, minimum: int = 0, maximum: int = _INT64_MAX) -> int:
    """A whole number as Google's JSON gives int64: a string of digits or a JSON number, never
    a fraction or a boolean; refused (400, naming the field) outside minimum..maximum."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise ApiError(400, f"{field} must be a whole number, not {_short(value)}.")
    if not minimum <= number <= maximum:
        raise ApiError(400, f"{field} must be between {minimum} and {maximum}, not {number}.")
    return number


def epoch_ms_parse(value: object, field: str) -> datetime:
    """An instant from epoch milliseconds (UTC)."""
    ms = int_parse(value, field, maximum=_LAST_MS)
    return _EPOCH + timedelta(milliseconds=ms)


def epoch_ms(at: datetime) -> str:
    """Epoch milliseconds as a string, exact (no float on the way)."""
    return str((at - _EPOCH) // timedelta(milliseconds=1))


def text_check(value: str, field: str, *, multiline: bool = False) -> str:
    """Refuse control characters (a NUL is refused by PostgreSQL itself) and lone surrogates,
    which no stored text may hold; a description may have line breaks and tabs."""
    for char in value:
        if multiline and char in "\n\r\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ApiError(
                400, f"{field} must not contain control characters or invalid Unicode ({char!r})."
            )
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _enum(values: list[str]) -> Any:
    return {"enum": list(values)}


def _forbid_extra() -> ConfigDict:
    # An unknown field is most often a misspelt one: refused by name, rather than ignored.
    return ConfigDict(extra="forbid")


# ---- API products ----


class ApiProductIn(Schema):
    """An API product as PUT replaces it (the name is in the path)."""

    model_config = _forbid_extra()

    name: StrictStr | None = Field(
        None, json_schema_extra=_SLUG, description="If given, the name in the path: it is fixed."
    )
    displayName: StrictStr = Field(..., json_schema_extra=_LINE)
    description: StrictStr | None = Field(None, json_schema_extra=_TEXT)
    quota: Any = Field(
        None,
        json_schema_extra=_whole(1, INT32_MAX),
        description="Calls per period; none: no quota.",
    )
    quotaInterval: Any = Field(
        None, json_schema_extra=_whole(1, INT32_MAX), description="Time units per period (1)."
    )
    quotaTimeUnit: StrictStr | None = Field(
        None, json_schema_extra=_enum(ApiProduct.QuotaTimeUnit.values), description="month"
    )
    createdAt: Any = Field(None, description="Output only; ignored.")
    lastModifiedAt: Any = Field(None, description="Output only; ignored.")


class ApiProductCreate(ApiProductIn):
    name: StrictStr = Field(  # type: ignore[assignment]
        ..., json_schema_extra=_SLUG, description="Letters, digits, '-' and '_'; fixed once made."
    )


class ApiProductOut(Schema):
    name: str
    displayName: str
    description: str
    quota: str | None = None
    quotaInterval: str | None = None
    quotaTimeUnit: str | None = None
    createdAt: str
    lastModifiedAt: str


class ApiProductList(Schema):
    apiProduct: list[ApiProductOut]


def api_product_out(product: ApiProduct) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": product.name,
        "displayName": product.display_name,
        "description": product.description,
        "createdAt": epoch_ms(product.created_at),
        "lastModifiedAt": epoch_ms(product.updated_at),
    }
    if product.quota is not None:
        out["quota"] = str(product.quota)
        out["quotaInterval"] = str(product.quota_interval)
        out["quotaTimeUnit"] = product.quota_time_unit
    return out


# ---- Rate plans ----


class ConsumptionRateIn(Schema):
    model_config = _forbid_extra()

    start: Any = Field(
        "0", json_schema_extra=_whole(0, _INT64_MAX), description="Calls numbered above this."
    )
    end: Any = Field(
        "0", json_schema_extra=_whole(0, _INT64_MAX), description="Up to this call; 0: no end."
    )
    fee: ApigeeMoney = Field(..., description="Per call, in the plan's currency.")


_PERCENTAGE: Any = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": 100},
        {"type": "string", "pattern": "^(100(\\.0+)?|[0-9]{1,2}(\\.[0-9]+)?)$"},
    ]
}


class RevenueShareRateIn(Schema):
    model_config = _forbid_extra()

    start: Any = Field("0", json_schema_extra=_whole(0, _INT64_MAX))
    end: Any = Field("0", json_schema_extra=_whole(0, _INT64_MAX))
    sharePercentage: Any = Field(
        ...,
        json_schema_extra=_PERCENTAGE,
        description="0 to 100, a number or decimal text.",
    )


class RatePlanIn(Schema):
    model_config = _forbid_extra()

    name: Any = Field(None, description="Output only; on PUT, if given, it must be this plan's.")
    apiproduct: StrictStr | None = Field(
        None, json_schema_extra=_SLUG, description="If given, the product in the path."
    )
    displayName: StrictStr = Field(..., json_schema_extra=_LINE)
    description: StrictStr | None = Field(None, json_schema_extra=_TEXT)
    billingPeriod: StrictStr | None = Field(None, json_schema_extra={"enum": ["MONTHLY"]})
    currencyCode: StrictStr = Field(..., json_schema_extra={"pattern": "^[A-Z]{3}$"})
    setupFee: ApigeeMoney | None = None
    fixedRecurringFee: ApigeeMoney | None = None
    fixedFeeFrequency: Any = Field(
        None, json_schema_extra=_whole(1, 120), description="Months between recurring fees (1)."
    )
    consumptionPricingType: StrictStr | None = Field(
        None, json_schema_extra=_enum(RatePlan.ConsumptionPricing.values)
    )
    consumptionPricingRates: list[ConsumptionRateIn] | None = None
    revenueShareType: StrictStr | None = Field(
        None, json_schema_extra=_enum(RatePlan.RevenueShare.values)
    )
    revenueShareRates: list[RevenueShareRateIn] | None = None
    state: StrictStr | None = Field(
        None, json_schema_extra=_enum(RatePlan.State.values), description="Default DRAFT."
    )
    startTime: Any = Field(None, json_schema_extra=_EPOCH_MS, description="Epoch milliseconds.")
    endTime: Any = Field(None, json_schema_extra=_EPOCH_MS, description="None: no end.")
    createdAt: Any = Field(None, description="Output only; ignored.")
    lastModifiedAt: Any = Field(None, description="Output only; ignored.")


class ConsumptionRateOut(Schema):
    start: str
    end: str
    fee: MoneyOut


class RevenueShareRateOut(Schema):
    start: str
    end: str
    sharePercentage: float


class RatePlanOut(Schema):
    name: str
    apiproduct: str
    displayName: str
    description: str
    billingPeriod: str
    currencyCode: str
    setupFee: MoneyOut
    fixedRecurringFee: MoneyOut
    fixedFeeFrequency: int
    consumptionPricingType: str | None = None
    consumptionPricingRates: list[ConsumptionRateOut] | None = None
    revenueShareType: str | None = None
    revenueShareRates: list[RevenueShareRateOut] | None = None
    state: str
    startTime: str
    endTime: str | None = None
    createdAt: str
    lastModifiedAt: str


class RatePlanList(Schema):
    ratePlans: list[RatePlanOut]


def rate_plan_out(plan: RatePlan) -> dict[str, Any]:
    """Apigee X's RatePlan: int64 numbers and times as strings, Money as {currencyCode, units,
    nanos}; the consumption and revenue-share parts only when the plan has them."""
    out: dict[str, Any] = {
        "name": str(plan.public_id),
        "apiproduct": plan.product.name,
        "displayName": plan.display_name,
        "description": plan.description,
        "billingPeriod": plan.billing_period,
        "currencyCode": plan.currency,
        "setupFee": money_to_apigee(Money(plan.setup_fee_nanos, plan.currency)),
        "fixedRecurringFee": money_to_apigee(Money(plan.recurring_fee_nanos, plan.currency)),
        "fixedFeeFrequency": plan.fee_frequency_months,
        "state": plan.state,
        "startTime": epoch_ms(plan.start_time),
        "createdAt": epoch_ms(plan.created_at),
        "lastModifiedAt": epoch_ms(plan.updated_at),
    }
    if plan.consumption_pricing_type:
        out["consumptionPricingType"] = plan.consumption_pricing_type
        out["consumptionPricingRates"] = [
            {
                "start": str(band["start"]),
                "end": str(band["end"]),
                "fee": money_to_apigee(Money(band["fee_nanos"], plan.currency)),
            }
            for band in plan.consumption_rates
        ]
    if plan.revenue_share_type:
        out["revenueShareType"] = plan.revenue_share_type
        out["revenueShareRates"] = [
            {
                "start": str(rate["start"]),
                "end": str(rate["end"]),
                # Apigee X's sharePercentage is a JSON number; stored exactly as decimal text.
                "sharePercentage": float(Decimal(rate["share_percentage"])),
            }
            for rate in plan.revenue_share_rates
        ]
    if plan.end_time is not None:
        out["endTime"] = epoch_ms(plan.end_time)
    return out


# ---- Developer subscriptions ----


class SubscriptionIn(Schema):
    model_config = _forbid_extra()

    apiproduct: StrictStr = Field(
        ..., json_schema_extra=_SLUG, description="The name of the API product to buy."
    )
    startTime: Any = Field(
        None, json_schema_extra=_EPOCH_MS, description="Epoch milliseconds; default now."
    )


class SubscriptionOut(Schema):
    name: str
    apiproduct: str
    startTime: str
    endTime: str | None = None
    createdAt: str
    lastModifiedAt: str


class SubscriptionList(Schema):
    developerSubscriptions: list[SubscriptionOut]


def subscription_out(subscription: Subscription) -> dict[str, Any]:
    out = {
        "name": str(subscription.public_id),
        "apiproduct": subscription.product.name,
        "startTime": epoch_ms(subscription.start_time),
        "createdAt": epoch_ms(subscription.created_at),
        "lastModifiedAt": epoch_ms(subscription.updated_at),
    }
    if subscription.end_time is not None:
        out["endTime"] = epoch_ms(subscription.end_time)
    return out
