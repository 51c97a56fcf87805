"""Reads of the catalog: products, the plan in force, what is on sale."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from billing.models import ApiProduct, RatePlan


def api_product_get(*, name: str) -> ApiProduct | None:
    return ApiProduct.objects.filter(name=name).first()


def _in_force_at(at: datetime) -> Q:
    return (
        Q(state=RatePlan.State.PUBLISHED)
        & Q(start_time__lte=at)
        & (Q(end_time__isnull=True) | Q(end_time__gt=at))
    )


def rate_plan_in_force(*, product: ApiProduct, at: datetime | None = None) -> RatePlan | None:
    """The product's one published plan in force at `at` (now by default), or None."""
    at = at or timezone.now()
    return (
        RatePlan.objects.filter(_in_force_at(at), product=product)
        .select_related("product")
        .order_by("-start_time")
        .first()
    )


def products_on_sale(*, at: datetime | None = None) -> QuerySet[ApiProduct]:
    """Products with a published plan in force now, each with `plans_in_force` prefetched:
    two queries however many products and plans (the Drupal module's Buy APIs page made
    several per plan, #409 and #492)."""
    at = at or timezone.now()
    in_force = RatePlan.objects.filter(_in_force_at(at)).order_by("start_time", "id")
    return (
        ApiProduct.objects.filter(rate_plans__in=in_force)
        .distinct()
        .prefetch_related(Prefetch("rate_plans", queryset=in_force, to_attr="plans_in_force"))
        .order_by("display_name", "name")
    )


def rate_plans_of(*, product: ApiProduct, published_only: bool) -> QuerySet[RatePlan]:
    plans = RatePlan.objects.filter(product=product).select_related("product")
    if published_only:
        plans = plans.filter(state=RatePlan.State.PUBLISHED)
    return plans.order_by("start_time", "id")


def rate_plan_has_subscribers(plan: RatePlan) -> bool:
    return plan.subscriptions.exists()


def api_products_all() -> QuerySet[ApiProduct]:
    """Every API product, on sale or not, by display name."""
    return ApiProduct.objects.order_by("display_name", "name")
