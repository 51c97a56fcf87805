"""Buy APIs: the products on sale, a card per rate plan in force, in words a developer reads
("$5.00 every month", "Greater than 100 up to 200: $0.015 per call")."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from accounts.access import PortalRequest
from billing.billing_accounts.services import billing_account_get_or_create
from billing.catalog.selectors import products_on_sale
from billing.models import ApiProduct, RatePlan
from billing.money import Money
from billing.subscriptions.selectors import products_bought


@dataclass(frozen=True)
class PlanCard:
    """A rate plan as its card shows it."""

    product: ApiProduct
    plan: RatePlan
    setup_fee: str
    recurring_fee: str
    consumption: list[str]
    banded: bool
    revenue_share: str
    quota: str


def plan_card(product: ApiProduct, plan: RatePlan) -> PlanCard:
    return PlanCard(
        product=product,
        plan=plan,
        setup_fee=_fee_or_none(Money(plan.setup_fee_nanos, plan.currency)),
        recurring_fee=recurring_fee_text(plan),
        consumption=[_band_text(band, plan.currency) for band in plan.consumption_rates],
        banded=plan.consumption_pricing_type == RatePlan.ConsumptionPricing.BANDED,
        revenue_share=_revenue_share_text(plan),
        quota=quota_text(product),
    )


def recurring_fee_text(plan: RatePlan) -> str:
    """ "$5.00 every month", "$12.00 every 3 months", or "None"."""
    fee = Money(plan.recurring_fee_nanos, plan.currency)
    if not fee.nanos:
        return "None"
    months = plan.fee_frequency_months
    return f"{fee} every month" if months == 1 else f"{fee} every {months} months"


def quota_text(product: ApiProduct) -> str:
    """ "1,000 calls per day", "60 calls per 5 minutes", or "" (no quota)."""
    if product.quota is None:
        return ""
    calls = _calls(product.quota)
    unit, interval = product.quota_time_unit, product.quota_interval
    return f"{calls} per {unit}" if interval == 1 else f"{calls} per {interval:,} {unit}s"


def _fee_or_none(fee: Money) -> str:
    return str(fee) if fee.nanos else "None"


def _calls(n: int) -> str:
    return f"{n:,} call" if n == 1 else f"{n:,} calls"


def _band_text(band: dict, currency: str) -> str:
    """A band prices the calls numbered greater than `start` up to `end` (0: no end)."""
    fee = Money(int(band["fee_nanos"]), currency)
    price = f"{fee} per call" if fee.nanos else "free"
    start, end = int(band["start"]), int(band["end"])
    if start == 0 and end == 0:
        calls = "Every call"
    elif start == 0:
        calls = f"Up to {_calls(end)}"
    elif end == 0:
        calls = f"Greater than {start:,}"
    else:
        calls = f"Greater than {start:,} up to {end:,}"
    return f"{calls}: {price}"


def _revenue_share_text(plan: RatePlan) -> str:
    if not plan.revenue_share_type or not plan.revenue_share_rates:
        return ""
    percentage = Decimal(str(plan.revenue_share_rates[0]["share_percentage"])).normalize()
    return f"{format(percentage, 'f')}% of revenue"


@login_required
@require_safe
def plans(request: PortalRequest) -> HttpResponse:
    """Every product with a plan in force, a card per plan; the same few queries for 1 or
    200 products (the Drupal module's page made several per plan)."""
    products = list(products_on_sale())
    developer = not request.user.is_staff  # admins look; developers buy
    bought = (
        products_bought(account=billing_account_get_or_create(user=request.user))
        if developer
        else set()
    )
    cards = [
        plan_card(product, plan)
        for product in products
        for plan in product.plans_in_force  # type: ignore[attr-defined]  # prefetched
    ]
    return render(
        request,
        "billing/catalog/plans.html",
        {"cards": cards, "bought": bought, "can_buy": developer},
    )
