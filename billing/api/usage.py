"""The gateway's usage report (`usage:batch`): up to 1,000 events, one result per event in
order; a bad event is rejected alone, an id seen before is a duplicate, forever."""

from __future__ import annotations

import json
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Field, Router
from pydantic import BaseModel, ConfigDict

from billing.api.auth import GATEWAY_AUTH, gateway_check
from billing.api.errors import JSON
from billing.api.schemas import ERRORS
from billing.ledger.entries import Actor
from billing.money import money_to_apigee
from billing.usage.ingest import MAX_BATCH, Reason, Status, UsageReport, usage_batch_record

router = Router()
STATUSES = [Status.RATED, Status.DUPLICATE, Status.REJECTED]
REASONS = [value for name, value in vars(Reason).items() if name.isupper()]


# Plain pydantic models, not ninja Schemas: a batch has a thousand events and results, and a
# Schema's per-object getter costs more than rating them.
class UsageEventIn(BaseModel):
    """Typed loosely on purpose: each event is checked on its own, and a bad one is answered
    REJECTED with its reason rather than failing the batch."""

    model_config = ConfigDict(extra="ignore")

    id: Any = Field(None, json_schema_extra={"type": "string"}, description="Unique forever.")
    consumerKey: Any = Field(None, json_schema_extra={"type": "string"})
    apiproduct: Any = Field(None, json_schema_extra={"type": "string"})
    time: Any = Field(
        None,
        json_schema_extra={"type": "string"},
        description="RFC 3339 with a zone, or epoch milliseconds; at most 35 days old.",
    )
    units: Any = Field(
        None, json_schema_extra={"type": "integer", "minimum": 1}, description="Default 1."
    )
    perUnitPriceMultiplier: Any = Field(
        None, json_schema_extra={"type": "string"}, description='Decimal text; default "1".'
    )


class UsageBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Each event stays the dict JSON gave: validating a thousand models cost more than
    # reading the fields once. The documented shape is UsageEventIn's.
    events: list[dict[str, Any]] = Field(
        ...,
        min_length=1,
        max_length=MAX_BATCH,
        json_schema_extra={"items": UsageEventIn.model_json_schema()},
    )


class ChargeOut(BaseModel):
    currencyCode: str
    units: str
    nanos: int | None = None


class UsageResultOut(BaseModel):
    id: str
    status: Literal[tuple(STATUSES)]  # type: ignore[valid-type]
    charge: ChargeOut | None = None
    reason: Literal[tuple(REASONS)] | None = None  # type: ignore[valid-type]


class UsageBatchOut(BaseModel):
    results: list[UsageResultOut]


@router.post(
    "/organizations/{org}/usage:batch",
    response={200: UsageBatchOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_usage_batch",
    auth=GATEWAY_AUTH,
)
def usage_batch(request: HttpRequest, org: str, body: UsageBatchIn) -> HttpResponse:
    gateway_check(request, org)
    reports = [
        UsageReport(
            event_id=event.get("id"),
            consumer_key=event.get("consumerKey"),
            product=event.get("apiproduct"),
            time=event.get("time"),
            units=event.get("units"),
            multiplier=event.get("perUnitPriceMultiplier"),
        )
        for event in body.events
    ]
    results = usage_batch_record(
        events=reports,
        actor=Actor.for_token(request.auth),  # type: ignore[attr-defined]
    )
    out = []
    for result in results:
        item: dict[str, Any] = {"id": result.event_id, "status": result.status}
        if result.charge is not None:
            item["charge"] = money_to_apigee(result.charge)
        if result.reason:
            item["reason"] = result.reason
        out.append(item)
    # Built here to UsageBatchOut's shape, so not validated again item by item.
    return HttpResponse(json.dumps({"results": out}), content_type=JSON)
