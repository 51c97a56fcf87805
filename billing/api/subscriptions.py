"""Developer subscriptions (Apigee X `developers/{email}/subscriptions`): buying an API product,
reading what was bought, and expiring it.

The developer acts for themself; others need "Purchase any rate plan", "View any purchased
plan" or "Update any purchased plan". The purchase itself (fees, funds, one open subscription
per product, the idempotency key) is billing.subscriptions.services'."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Header, Router

from billing.api.developers import developer_account
from billing.api.errors import ApiError
from billing.api.schemas import (
    ERRORS,
    ERRORS_AND_CONFLICT,
    SubscriptionIn,
    SubscriptionList,
    SubscriptionOut,
    epoch_ms_parse,
    subscription_out,
)
from billing.catalog.selectors import api_product_get
from billing.ledger.entries import Actor
from billing.models import BillingAccount, Subscription
from billing.subscriptions.selectors import subscription_get, subscriptions_of
from billing.subscriptions.services import subscription_expire, subscription_purchase

router = Router()
SUBSCRIPTIONS = "/organizations/{org}/developers/{email}/subscriptions"
SUBSCRIPTION = SUBSCRIPTIONS + "/{subscription_id}"

PURCHASE_ANY = "billing.purchase_any_rate_plan"
VIEW_ANY = "billing.view_any_purchased_plan"
UPDATE_ANY = "billing.update_any_purchased_plan"


def _subscription(account: BillingAccount, subscription_id: str) -> Subscription:
    try:
        public_id = str(uuid.UUID(subscription_id))
    except ValueError:
        public_id = ""
    subscription = subscription_get(account=account, public_id=public_id) if public_id else None
    if subscription is None:
        raise ApiError(404, f"Subscription {subscription_id!r} not found for this developer.")
    return subscription


def _answer(account: BillingAccount, subscription: Subscription) -> dict[str, Any]:
    # Read back: the purchase and the expiry change the row after they made or locked it.
    return subscription_out(_subscription(account, str(subscription.public_id)))


@router.post(
    SUBSCRIPTIONS,
    response={200: SubscriptionOut, **ERRORS_AND_CONFLICT},
    exclude_none=True,
    operation_id="billing_api_create_developer_subscription",
)
def create_subscription(
    request: HttpRequest,
    response: HttpResponse,
    org: str,
    email: str,
    body: SubscriptionIn,
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        description="Your key for this purchase: the same key again buys once and answers the "
        "same subscription (Idempotent-Replayed: true).",
    ),
) -> dict[str, Any]:
    """Buys the product on its plan in force at startTime (now by default): the setup fee and
    the first recurring fee (prorated) are charged now, or at a future start (checked now)."""
    account = developer_account(request, org, email, PURCHASE_ANY, own=True)
    if idempotency_key is not None and not idempotency_key.strip():
        raise ApiError(400, "Idempotency-Key is empty: give a key, or leave the header out.")
    name = body.apiproduct
    product = api_product_get(name=name) if name.isprintable() and len(name) <= 100 else None
    if product is None:
        raise ApiError(404, f"API product {name!r} not found.")
    start = None if body.startTime is None else epoch_ms_parse(body.startTime, "startTime")
    purchase = subscription_purchase(
        account=account,
        product=product,
        actor=Actor.for_token(request.auth),  # type: ignore[attr-defined]
        start_time=start,
        idempotency_key=idempotency_key or "",
    )
    if purchase.replayed:
        response["Idempotent-Replayed"] = "true"
    return _answer(account, purchase.subscription)


@router.get(
    SUBSCRIPTIONS,
    response={200: SubscriptionList, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_list_developer_subscriptions",
)
def list_subscriptions(request: HttpRequest, org: str, email: str) -> dict[str, Any]:
    account = developer_account(request, org, email, VIEW_ANY, own=True)
    subscriptions = subscriptions_of(account=account).order_by("-start_time", "-id")
    return {"developerSubscriptions": [subscription_out(s) for s in subscriptions]}


# Before SUBSCRIPTION: its {subscription_id} would also match "<id>:expire" and answer 405.
@router.post(
    SUBSCRIPTION + ":expire",
    response={200: SubscriptionOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_expire_developer_subscription",
)
def expire_subscription(
    request: HttpRequest, org: str, email: str, subscription_id: str
) -> dict[str, Any]:
    """Ends it now: calls stop and no further fee is charged (what was paid is not refunded).
    Takes an empty body (or `{}`); expiring an ended subscription changes nothing."""
    account = developer_account(request, org, email, UPDATE_ANY, own=True)
    _empty_body_check(request)
    subscription = _subscription(account, subscription_id)
    expired = subscription_expire(
        subscription=subscription,
        actor=Actor.for_token(request.auth),  # type: ignore[attr-defined]
    )
    return _answer(account, expired)


@router.get(
    SUBSCRIPTION,
    response={200: SubscriptionOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_get_developer_subscription",
)
def get_subscription(
    request: HttpRequest, org: str, email: str, subscription_id: str
) -> dict[str, Any]:
    account = developer_account(request, org, email, VIEW_ANY, own=True)
    return subscription_out(_subscription(account, subscription_id))


def _empty_body_check(request: HttpRequest) -> None:
    if not request.body.strip():
        return
    try:
        body = json.loads(request.body)
    except ValueError:
        body = None
    if body != {}:
        raise ApiError(400, ":expire takes no fields: send an empty body or {}.")
