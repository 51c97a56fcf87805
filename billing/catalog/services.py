"""Writes of the catalog. Every change is audited. A published plan that developers bought is
never edited in place: a change becomes a new plan from a future start, and the old one ends
then, so nobody's price changes under them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from billing.audit import audit_log
from billing.catalog.rates import Band, ShareRate, bands_check, revenue_share_check
from billing.catalog.selectors import rate_plan_has_subscribers
from billing.exceptions import AlreadyExists, BillingError
from billing.models import ApiProduct, RatePlan
from billing.money import Money, MoneyError, currency_validate, stripe_currency_check


@dataclass(frozen=True)
class ProductSpec:
    name: str
    display_name: str
    description: str = ""
    quota: int | None = None
    quota_interval: int = 1
    quota_time_unit: str = ApiProduct.QuotaTimeUnit.MONTH


@dataclass(frozen=True)
class PlanSpec:
    """A rate plan as asked for; fees in the plan's currency (checked)."""

    display_name: str
    currency: str
    description: str = ""
    setup_fee: Money | None = None
    recurring_fee: Money | None = None
    fee_frequency_months: int = 1
    consumption_pricing_type: str = ""
    bands: list[Band] = field(default_factory=list)
    revenue_share_type: str = ""
    share_rates: list[ShareRate] = field(default_factory=list)
    state: str = RatePlan.State.DRAFT
    start_time: datetime | None = None
    end_time: datetime | None = None


# ---- Products ----


def api_product_create(*, spec: ProductSpec, actor: User | None) -> ApiProduct:
    product = ApiProduct(**_product_fields(spec))
    _product_check(product)
    try:
        with transaction.atomic():
            product.save(force_insert=True)
    except IntegrityError:
        raise AlreadyExists(f"An API product named {spec.name!r} exists already.") from None
    audit_log(actor=actor, action="api_product.create", name=product.name)
    return product


def api_product_update(*, product: ApiProduct, spec: ProductSpec, actor: User | None) -> ApiProduct:
    if spec.name != product.name:
        raise BillingError("An API product's name cannot change: it is in every path and key.")
    for name, value in _product_fields(spec).items():
        setattr(product, name, value)
    _product_check(product)
    product.save()
    audit_log(actor=actor, action="api_product.update", name=product.name)
    return product


def api_product_delete(*, product: ApiProduct, actor: User | None) -> None:
    """Only a product nobody bought: its history must keep its name and prices."""
    if product.rate_plans.filter(subscriptions__isnull=False).exists():
        raise BillingError(
            f"{product.name!r} has been bought, so it stays: end its rate plans instead "
            "(set an endTime) to stop selling it."
        )
    with transaction.atomic():
        product.rate_plans.all().delete()
        product.delete()
    audit_log(actor=actor, action="api_product.delete", name=product.name)


def _product_fields(spec: ProductSpec) -> dict[str, object]:
    return {
        "name": spec.name,
        "display_name": spec.display_name.strip(),
        "description": spec.description.strip(),
        "quota": spec.quota,
        "quota_interval": spec.quota_interval,
        "quota_time_unit": spec.quota_time_unit,
    }


def _product_check(product: ApiProduct) -> None:
    name = product.name
    if (
        not name
        or len(name) > 100
        or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    ):
        raise BillingError("name: use 1 to 100 letters, digits, '-' or '_', e.g. weather-api.")
    if not product.display_name:
        raise BillingError("displayName is required.")
    if len(product.display_name) > 200:
        raise BillingError("displayName is at most 200 characters.")
    if product.quota is not None and product.quota < 1:
        raise BillingError("quota: give a positive number of calls, or none.")
    if product.quota_interval < 1:
        raise BillingError("quotaInterval must be at least 1.")
    if product.quota_time_unit not in ApiProduct.QuotaTimeUnit.values:
        raise BillingError("quotaTimeUnit must be minute, hour, day or month.")


# ---- Rate plans ----


def rate_plan_create(*, product: ApiProduct, spec: PlanSpec, actor: User | None) -> RatePlan:
    with transaction.atomic():
        product = _product_lock(product)
        plan = RatePlan(product=product, **_plan_fields(spec))
        _plan_check(plan)
        plan.save(force_insert=True)
    audit_log(
        actor=actor, action="rate_plan.create", product=product.name, plan=str(plan.public_id)
    )
    return plan


def rate_plan_update(*, plan: RatePlan, spec: PlanSpec, actor: User | None) -> RatePlan:
    """Change a plan. One that developers bought while published becomes a new plan from
    `spec.start_time`, which must be in the future; the old one ends then. Returns the plan
    that carries the change."""
    with transaction.atomic():
        _product_lock(plan.product)
        plan = RatePlan.objects.select_for_update().select_related("product").get(pk=plan.pk)
        if plan.state == RatePlan.State.PUBLISHED and rate_plan_has_subscribers(plan):
            changed = _plan_supersede(plan, spec)
        else:
            for name, value in _plan_fields(spec).items():
                setattr(plan, name, value)
            _plan_check(plan)
            plan.save()
            changed = plan
    audit_log(
        actor=actor,
        action="rate_plan.update",
        product=plan.product.name,
        plan=str(plan.public_id),
        now_priced_by=str(changed.public_id),
    )
    return changed


def _plan_supersede(plan: RatePlan, spec: PlanSpec) -> RatePlan:
    start = spec.start_time
    if start is None or start <= timezone.now():
        raise BillingError(
            "This plan has been bought, so its price does not change under its buyers: give a "
            "future startTime, and the change becomes a new plan from then (this one ends then)."
        )
    if plan.end_time is not None and start >= plan.end_time:
        raise BillingError("The new plan must start before this one ends.")
    successor = RatePlan(product=plan.product, **_plan_fields(replace(spec, start_time=start)))
    RatePlan.objects.filter(pk=plan.pk).update(end_time=start, updated_at=timezone.now())
    plan.end_time = start
    _plan_check(successor)
    successor.save(force_insert=True)
    return successor


def rate_plan_delete(*, plan: RatePlan, actor: User | None) -> None:
    if rate_plan_has_subscribers(plan):
        raise BillingError(
            "This plan has been bought, so it stays: set an endTime to stop selling it."
        )
    plan.delete()
    audit_log(
        actor=actor, action="rate_plan.delete", product=plan.product.name, plan=str(plan.public_id)
    )


def _product_lock(product: ApiProduct) -> ApiProduct:
    """Plans of one product are checked against each other under its row lock, so two
    publishes at once cannot both find the other's time free."""
    return ApiProduct.objects.select_for_update().get(pk=product.pk)


def _plan_fields(spec: PlanSpec) -> dict[str, object]:
    return {
        "display_name": spec.display_name.strip(),
        "description": spec.description.strip(),
        "currency": spec.currency,
        "setup_fee_nanos": _fee(spec.setup_fee, spec.currency, "setupFee"),
        "recurring_fee_nanos": _fee(spec.recurring_fee, spec.currency, "fixedRecurringFee"),
        "fee_frequency_months": spec.fee_frequency_months,
        "consumption_pricing_type": spec.consumption_pricing_type,
        "consumption_rates": [band.as_json() for band in spec.bands],
        "revenue_share_type": spec.revenue_share_type,
        "revenue_share_rates": [rate.as_json() for rate in spec.share_rates],
        "state": spec.state,
        "start_time": spec.start_time or timezone.now(),
        "end_time": spec.end_time,
    }


def _fee(money: Money | None, currency: str, what: str) -> int:
    if money is None:
        return 0
    if money.currency != currency:
        raise BillingError(
            f"{what} is in {money.currency}, but the plan's currency is {currency}: every fee "
            "of a plan is in its currency."
        )
    if money.nanos < 0:
        raise BillingError(f"{what} cannot be negative.")
    return money.nanos


def _plan_check(plan: RatePlan) -> None:
    try:
        currency_validate(plan.currency)
        stripe_currency_check(plan.currency)  # developers pay it from wallets topped up by card
    except MoneyError as exc:
        raise BillingError(f"currencyCode: {exc}") from exc
    if not plan.display_name:
        raise BillingError("displayName is required.")
    if plan.billing_period != "MONTHLY":
        raise BillingError("billingPeriod must be MONTHLY.")
    if plan.fee_frequency_months < 1 or plan.fee_frequency_months > 120:
        raise BillingError("fixedFeeFrequency is a number of months, from 1 to 120.")
    if plan.state not in RatePlan.State.values:
        raise BillingError("state must be DRAFT or PUBLISHED.")
    if plan.end_time is not None and plan.end_time <= plan.start_time:
        raise BillingError("endTime must be after startTime.")
    bands_check(plan.consumption_pricing_type, _bands(plan))
    revenue_share_check(plan.revenue_share_type, _share_rates(plan))
    if plan.state == RatePlan.State.PUBLISHED:
        _one_published_at_a_time(plan)


def _bands(plan: RatePlan) -> list[Band]:
    return [Band(r["start"], r["end"], r["fee_nanos"]) for r in plan.consumption_rates]


def _share_rates(plan: RatePlan) -> list[ShareRate]:
    return [
        ShareRate(r["start"], r["end"], Decimal(r["share_percentage"]))
        for r in plan.revenue_share_rates
    ]


def _one_published_at_a_time(plan: RatePlan) -> None:
    """At most one published plan of a product is in force at any instant."""
    others = RatePlan.objects.filter(product=plan.product, state=RatePlan.State.PUBLISHED)
    if plan.pk:
        others = others.exclude(pk=plan.pk)
    for other in others:
        ends_after_other_starts = plan.end_time is None or plan.end_time > other.start_time
        starts_before_other_ends = other.end_time is None or plan.start_time < other.end_time
        if ends_after_other_starts and starts_before_other_ends:
            raise BillingError(
                f"Another published plan of {plan.product.name!r}, {other.display_name!r}, is in "
                f"force from {other.start_time:%Y-%m-%d %H:%M} UTC"
                + (f" to {other.end_time:%Y-%m-%d %H:%M} UTC" if other.end_time else "")
                + ": only one published plan may be in force at a time. End it first, or "
                "start this one after it."
            )
