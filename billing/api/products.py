"""API products and their rate plans (Apigee X `apiproducts` and `rateplans`).

Anyone with a valid token reads products and published plans; drafts are for those who may see
plans being prepared; every change needs "Administer monetization". The catalog's services
check the prices; this only parses Apigee X's JSON into their terms and shapes the answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Router

from accounts.models import User
from billing.api.errors import ApiError
from billing.api.schemas import (
    ERRORS,
    ERRORS_AND_CONFLICT,
    INT32_MAX,
    ApiProductCreate,
    ApiProductIn,
    ApiProductList,
    ApiProductOut,
    RatePlanIn,
    RatePlanList,
    RatePlanOut,
    api_product_out,
    epoch_ms_parse,
    int_parse,
    rate_plan_out,
    text_check,
)
from billing.catalog.rates import Band, ShareRate, share_percentage_parse
from billing.catalog.selectors import api_product_get, api_products_all, rate_plans_of
from billing.catalog.services import (
    PlanSpec,
    ProductSpec,
    api_product_create,
    api_product_delete,
    api_product_update,
    rate_plan_create,
    rate_plan_delete,
    rate_plan_update,
)
from billing.exceptions import BillingError
from billing.models import ApiProduct, RatePlan
from billing.money import Money, currency_validate, money_from_apigee

router = Router()
PRODUCTS = "/organizations/{org}/apiproducts"
PRODUCT = PRODUCTS + "/{name}"
PLANS = PRODUCT + "/rateplans"
PLAN = PLANS + "/{plan_id}"

ADMINISTER = "billing.administer_monetization"
VIEW_PLANS = "billing.view_rate_plan"


# ---- Who asks, and for what ----


def _caller(request: HttpRequest, org: str, permission: str | None = None) -> User:
    """The token's user, after checking the organisation and, for a change, the permission."""
    if org != settings.PORTAL_ORG:
        raise ApiError(404, f"Organization {org!r} not found.")
    caller: User = request.auth.user  # type: ignore[attr-defined]
    if permission is not None and not caller.has_perm(permission):
        raise ApiError(403, f"This token's user lacks the permission {permission!r}.")
    return caller


def _sees_drafts(caller: User) -> bool:
    return caller.has_perm(VIEW_PLANS) or caller.has_perm(ADMINISTER)


def _product(name: str) -> ApiProduct:
    # No stored name looks like this; PostgreSQL would refuse a NUL byte outright.
    product = api_product_get(name=name) if name.isprintable() and len(name) <= 100 else None
    if product is None:
        raise ApiError(404, f"API product {name!r} not found.")
    return product


def _plan(product: ApiProduct, plan_id: str, caller: User) -> RatePlan:
    """The product's plan; a draft is not found by those who may not see drafts."""
    try:
        public_id = uuid.UUID(plan_id)
    except ValueError:
        public_id = None
    plans = rate_plans_of(product=product, published_only=not _sees_drafts(caller))
    plan = plans.filter(public_id=public_id).first() if public_id else None
    if plan is None:
        raise ApiError(404, f"Rate plan {plan_id!r} of API product {product.name!r} not found.")
    return plan


# ---- Apigee X JSON into the catalog's terms ----


def _product_spec(body: ApiProductIn, name: str) -> ProductSpec:
    quota = None if body.quota is None else int_parse(body.quota, "quota", maximum=INT32_MAX)
    interval = 1
    if body.quotaInterval is not None:
        interval = int_parse(body.quotaInterval, "quotaInterval", maximum=INT32_MAX)
    return ProductSpec(
        name=text_check(name, "name"),
        display_name=text_check(body.displayName, "displayName"),
        description=text_check(body.description or "", "description", multiline=True),
        quota=quota,
        quota_interval=interval,
        quota_time_unit=body.quotaTimeUnit or ApiProduct.QuotaTimeUnit.MONTH,
    )


def _plan_spec(body: RatePlanIn, product: ApiProduct, start: datetime | None) -> PlanSpec:
    """The plan as asked for; `start` stands in for a startTime left out."""
    if body.apiproduct is not None and body.apiproduct != product.name:
        raise ApiError(
            400, f"apiproduct is {body.apiproduct!r}, but the path names {product.name!r}."
        )
    if body.billingPeriod not in (None, "MONTHLY"):
        raise ApiError(400, f"billingPeriod must be MONTHLY, not {body.billingPeriod!r}.")
    display_name = text_check(body.displayName, "displayName")
    if len(display_name.strip()) > 200:
        raise ApiError(400, "displayName is at most 200 characters.")
    currency = currency_validate(body.currencyCode)
    frequency = 1
    if body.fixedFeeFrequency is not None:
        frequency = int_parse(body.fixedFeeFrequency, "fixedFeeFrequency", maximum=INT32_MAX)
    if body.startTime is not None:
        start = epoch_ms_parse(body.startTime, "startTime")
    return PlanSpec(
        display_name=display_name,
        currency=currency,
        description=text_check(body.description or "", "description", multiline=True),
        setup_fee=_fee(body.setupFee, "setupFee"),
        recurring_fee=_fee(body.fixedRecurringFee, "fixedRecurringFee"),
        fee_frequency_months=frequency,
        consumption_pricing_type=body.consumptionPricingType or "",
        bands=_bands(body, currency),
        revenue_share_type=body.revenueShareType or "",
        share_rates=_share_rates(body),
        state=body.state or RatePlan.State.DRAFT,
        start_time=start,
        end_time=None if body.endTime is None else epoch_ms_parse(body.endTime, "endTime"),
    )


def _fee(money: Any, field: str) -> Money | None:
    return None if money is None else money_from_apigee(money.model_dump(), field)


def _bands(body: RatePlanIn, currency: str) -> list[Band]:
    bands = []
    for n, rate in enumerate(body.consumptionPricingRates or [], 1):
        where = f"consumptionPricingRates[{n}]"
        fee = money_from_apigee(rate.fee.model_dump(), f"{where}.fee")
        if fee.currency != currency:
            raise ApiError(
                400,
                f"{where}.fee is in {fee.currency}, but the plan's currency is {currency}: "
                "every fee of a plan is in its currency.",
            )
        start = int_parse(rate.start, f"{where}.start")
        bands.append(Band(start, int_parse(rate.end, f"{where}.end"), fee.nanos))
    return bands


def _share_rates(body: RatePlanIn) -> list[ShareRate]:
    rates = []
    for n, rate in enumerate(body.revenueShareRates or [], 1):
        where = f"revenueShareRates[{n}]"
        percentage = share_percentage_parse(rate.sharePercentage, f"{where}.sharePercentage")
        start = int_parse(rate.start, f"{where}.start")
        rates.append(ShareRate(start, int_parse(rate.end, f"{where}.end"), percentage))
    return rates


def _refused_precondition(exc: BillingError) -> ApiError:
    """What was bought stays: the request is sound, the catalog's state refuses it."""
    return ApiError(400, str(exc), "FAILED_PRECONDITION")


# ---- API products ----


@router.post(
    PRODUCTS,
    response={200: ApiProductOut, **ERRORS_AND_CONFLICT},
    exclude_none=True,
    operation_id="billing_api_create_api_product",
)
def create_api_product(request: HttpRequest, org: str, body: ApiProductCreate) -> dict[str, Any]:
    caller = _caller(request, org, ADMINISTER)
    product = api_product_create(spec=_product_spec(body, body.name), actor=caller)
    return api_product_out(product)


@router.get(
    PRODUCTS,
    response={200: ApiProductList, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_list_api_products",
)
def list_api_products(request: HttpRequest, org: str) -> dict[str, Any]:
    _caller(request, org)
    return {"apiProduct": [api_product_out(product) for product in api_products_all()]}


@router.get(
    PRODUCT,
    response={200: ApiProductOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_get_api_product",
)
def get_api_product(request: HttpRequest, org: str, name: str) -> dict[str, Any]:
    _caller(request, org)
    return api_product_out(_product(name))


@router.put(
    PRODUCT,
    response={200: ApiProductOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_update_api_product",
)
def update_api_product(
    request: HttpRequest, org: str, name: str, body: ApiProductIn
) -> dict[str, Any]:
    caller = _caller(request, org, ADMINISTER)
    product = _product(name)
    spec = _product_spec(body, body.name if body.name is not None else product.name)
    return api_product_out(api_product_update(product=product, spec=spec, actor=caller))


@router.delete(
    PRODUCT,
    response={200: ApiProductOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_delete_api_product",
)
def delete_api_product(request: HttpRequest, org: str, name: str) -> dict[str, Any]:
    """Answers with the product as it was (as Apigee X does)."""
    caller = _caller(request, org, ADMINISTER)
    product = _product(name)
    deleted = api_product_out(product)
    try:
        api_product_delete(product=product, actor=caller)
    except BillingError as exc:
        raise _refused_precondition(exc) from exc
    return deleted


# ---- Rate plans ----


@router.post(
    PLANS,
    response={200: RatePlanOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_create_rate_plan",
)
def create_rate_plan(request: HttpRequest, org: str, name: str, body: RatePlanIn) -> dict[str, Any]:
    caller = _caller(request, org, ADMINISTER)
    product = _product(name)
    spec = _plan_spec(body, product, start=None)
    return rate_plan_out(rate_plan_create(product=product, spec=spec, actor=caller))


@router.get(
    PLANS,
    response={200: RatePlanList, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_list_rate_plans",
)
def list_rate_plans(request: HttpRequest, org: str, name: str) -> dict[str, Any]:
    caller = _caller(request, org)
    product = _product(name)
    plans = rate_plans_of(product=product, published_only=not _sees_drafts(caller))
    return {"ratePlans": [rate_plan_out(plan) for plan in plans]}


@router.get(
    PLAN,
    response={200: RatePlanOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_get_rate_plan",
)
def get_rate_plan(request: HttpRequest, org: str, name: str, plan_id: str) -> dict[str, Any]:
    caller = _caller(request, org)
    return rate_plan_out(_plan(_product(name), plan_id, caller))


@router.put(
    PLAN,
    response={200: RatePlanOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_update_rate_plan",
)
def update_rate_plan(
    request: HttpRequest, org: str, name: str, plan_id: str, body: RatePlanIn
) -> dict[str, Any]:
    """Replaces the plan. A published plan that developers bought is not changed under them:
    the change becomes a new plan from the (future) startTime, this one ends then, and the
    answer is the new plan (its own `name`)."""
    caller = _caller(request, org, ADMINISTER)
    plan = _plan(_product(name), plan_id, caller)
    if body.name is not None and body.name != str(plan.public_id):
        raise ApiError(400, f"name is {body.name!r}, but the path names plan {plan_id!r}.")
    # Left out, the start stays where it was (rather than moving to now).
    spec = _plan_spec(body, plan.product, start=plan.start_time)
    return rate_plan_out(rate_plan_update(plan=plan, spec=spec, actor=caller))


@router.delete(
    PLAN,
    response={200: RatePlanOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_delete_rate_plan",
)
def delete_rate_plan(request: HttpRequest, org: str, name: str, plan_id: str) -> dict[str, Any]:
    """Answers with the plan as it was (as Apigee X does)."""
    caller = _caller(request, org, ADMINISTER)
    plan = _plan(_product(name), plan_id, caller)
    deleted = rate_plan_out(plan)
    try:
        rate_plan_delete(plan=plan, actor=caller)
    except BillingError as exc:
        raise _refused_precondition(exc) from exc
    return deleted
