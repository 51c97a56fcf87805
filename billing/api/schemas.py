"""The API's request and answer shapes (field names as in seed 004)."""

from __future__ import annotations

from typing import Any

from ninja import Schema
from pydantic import Field, StrictStr

from billing.ledger.selectors import WalletBalance
from billing.models import BillingType
from billing.money import money_to_apigee

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
