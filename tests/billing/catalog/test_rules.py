"""The catalog's rules, asked of its services directly: each refusal says what is wrong and
changes nothing; a published plan that somebody bought changes only as a new plan from a future
start, and the old one ends then."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.catalog.rates import Band, ShareRate, share_percentage_parse
from billing.catalog.selectors import rate_plan_in_force
from billing.catalog.services import PlanSpec, rate_plan_create, rate_plan_update
from billing.exceptions import BillingError
from billing.ledger.entries import Actor
from billing.models import AuditLogEntry, RatePlan, Subscription
from billing.money import Money, money_parse
from billing.subscriptions.services import subscription_purchase
from tests.conftest import usd
from tests.factories import ApiProductFactory, published_plan

pytestmark = pytest.mark.django_db


def banded(*bands: Band, **fields: object) -> PlanSpec:
    return PlanSpec(
        display_name="Standard",
        currency="USD",
        consumption_pricing_type=RatePlan.ConsumptionPricing.BANDED,
        bands=list(bands),
        **fields,  # type: ignore[arg-type]
    )


def cents(amount: str) -> int:
    return usd(amount).nanos


def refused(spec: PlanSpec, message: str, product=None) -> None:
    """The service refuses `spec` with `message`, and nothing is saved or audited."""
    product = product or ApiProductFactory()
    plans, audited = RatePlan.objects.count(), AuditLogEntry.objects.count()
    with pytest.raises(BillingError) as refusal:
        rate_plan_create(product=product, spec=spec, actor=None)
    assert message in str(refusal.value)
    assert (RatePlan.objects.count(), AuditLogEntry.objects.count()) == (plans, audited)


def test_contiguous_bands_ending_open_are_accepted():
    spec = banded(Band(0, 100, 0), Band(100, 200, cents("0.015")), Band(200, 0, cents("0.01")))
    plan = rate_plan_create(product=ApiProductFactory(), spec=spec, actor=None)
    assert [r["start"] for r in plan.consumption_rates] == [0, 100, 200]
    assert plan.consumption_rates[-1] == {"start": 200, "end": 0, "fee_nanos": 10_000_000}


def test_overlapping_bands_are_refused():
    refused(
        banded(Band(0, 100, 0), Band(50, 0, 1)),
        "consumptionPricingRates[2] starts at 50 and overlaps the one before: it must start at 100",
    )


def test_bands_that_leave_a_gap_are_refused():
    refused(
        banded(Band(0, 100, 0), Band(150, 0, 1)),
        "consumptionPricingRates[2] starts at 150 and leaves a gap",
    )


def test_bands_must_start_at_zero():
    refused(banded(Band(10, 0, 1)), "consumptionPricingRates[1] starts at 10 and leaves a gap")


def test_no_band_may_follow_an_open_ended_one():
    refused(
        banded(Band(0, 0, 1), Band(0, 100, 1)),
        "consumptionPricingRates[1] has no end (0), so no rate may follow it.",
    )


def test_a_band_must_end_after_it_starts():
    refused(
        banded(Band(0, 100, 0), Band(100, 100, 1)),
        "consumptionPricingRates[2] must end after it starts (100).",
    )


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            PlanSpec(display_name="S", currency="USD", setup_fee=Money(-1, "USD")),
            "setupFee cannot be negative.",
        ),
        (
            PlanSpec(display_name="S", currency="USD", recurring_fee=usd("-5")),
            "fixedRecurringFee cannot be negative.",
        ),
        (
            banded(Band(0, 100, 0), Band(100, 0, -1)),
            "consumptionPricingRates[2]: a fee cannot be negative.",
        ),
    ],
    ids=["setup", "recurring", "band"],
)
def test_negative_fees_are_refused(spec, message):
    refused(spec, message)


def test_zero_fees_are_valid():
    plan = rate_plan_create(
        product=ApiProductFactory(),
        spec=PlanSpec(display_name="Free", currency="USD", setup_fee=usd("0")),
        actor=None,
    )
    assert (plan.setup_fee, plan.recurring_fee) == (usd("0"), usd("0"))


@pytest.mark.parametrize("fee", ["setup_fee", "recurring_fee"])
def test_a_fee_in_another_currency_than_the_plans_is_refused(fee):
    refused(
        PlanSpec(display_name="S", currency="USD", **{fee: money_parse("5", "EUR")}),  # type: ignore[arg-type]
        "is in EUR, but the plan's currency is USD",
    )


def test_a_second_published_plan_in_force_at_the_same_instant_is_refused():
    now = timezone.now()
    first = published_plan(start=now - timedelta(days=1), end=now + timedelta(days=30))
    second = PlanSpec(
        display_name="Premium",
        currency="USD",
        state=RatePlan.State.PUBLISHED,
        start_time=now + timedelta(days=29),  # overlaps the first's last day
    )
    refused(second, "only one published plan may be in force at a time", product=first.product)
    # Starting when the first ends, or as a draft, it is accepted.
    after = rate_plan_create(
        product=first.product,
        spec=replace(second, start_time=first.end_time),
        actor=None,
    )
    draft = rate_plan_create(
        product=first.product, spec=replace(second, state=RatePlan.State.DRAFT), actor=None
    )
    assert rate_plan_in_force(product=first.product) == first
    assert rate_plan_in_force(product=first.product, at=first.end_time) == after
    # Publishing the overlapping draft is refused the same way, and it stays a draft.
    with pytest.raises(BillingError, match="only one published plan may be in force"):
        rate_plan_update(plan=draft, spec=second, actor=None)
    draft.refresh_from_db()
    assert draft.state == RatePlan.State.DRAFT


def test_a_published_plan_of_another_product_does_not_count():
    published_plan()
    plan = published_plan()
    assert plan.state == RatePlan.State.PUBLISHED


@pytest.mark.parametrize("percentage", ["-0.5", "100.01", "150", "NaN", "Infinity", "ten"])
def test_a_revenue_share_outside_0_to_100_percent_is_refused_as_typed(percentage):
    with pytest.raises(BillingError) as refusal:
        share_percentage_parse(percentage, "revenueShareRates[1].sharePercentage")
    assert str(refusal.value).startswith("revenueShareRates[1].sharePercentage: ")
    assert "between 0 and 100 %" in str(refusal.value) or "is not a percentage" in str(
        refusal.value
    )


@pytest.mark.parametrize("percentage", ["0", "12.5", "100"])
def test_a_revenue_share_from_0_to_100_percent_is_accepted(percentage):
    plan = rate_plan_create(
        product=ApiProductFactory(),
        spec=PlanSpec(
            display_name="S",
            currency="USD",
            revenue_share_type=RatePlan.RevenueShare.FIXED,
            share_rates=[ShareRate(0, 0, share_percentage_parse(percentage, "share"))],
        ),
        actor=None,
    )
    assert plan.revenue_share_rates == [{"start": 0, "end": 0, "share_percentage": percentage}]


@pytest.mark.parametrize("percentage", ["-0.5", "100.01", "150"])
def test_the_service_refuses_a_revenue_share_outside_0_to_100_percent(percentage):
    """Not only the parser: a caller that builds the rate itself is held to the same range."""
    refused(
        PlanSpec(
            display_name="S",
            currency="USD",
            revenue_share_type=RatePlan.RevenueShare.FIXED,
            share_rates=[ShareRate(0, 0, Decimal(percentage))],
        ),
        "between 0 and 100",
    )


@pytest.mark.parametrize("gap", [timedelta(0), timedelta(hours=-1)], ids=["equal", "before"])
def test_an_end_not_after_the_start_is_refused(gap):
    start = timezone.now() + timedelta(days=1)
    refused(
        PlanSpec(display_name="S", currency="USD", start_time=start, end_time=start + gap),
        "endTime must be after startTime.",
    )


def test_a_plan_nobody_bought_is_changed_in_place():
    plan = published_plan(setup="1")
    changed = rate_plan_update(
        plan=plan,
        spec=PlanSpec(
            display_name="Standard",
            currency="USD",
            setup_fee=usd("2"),
            state=RatePlan.State.PUBLISHED,
            start_time=plan.start_time,
        ),
        actor=None,
    )
    assert changed.pk == plan.pk and changed.setup_fee == usd("2")
    assert RatePlan.objects.count() == 1


def test_a_bought_plan_changes_as_a_new_plan_from_a_future_start(developer):
    plan = published_plan(setup="1", recurring="2")
    subscription = subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    ).subscription
    change = PlanSpec(
        display_name="Standard",
        currency="USD",
        setup_fee=usd("3"),
        recurring_fee=usd("4"),
        state=RatePlan.State.PUBLISHED,
    )

    for start in (None, timezone.now() - timedelta(minutes=1)):
        with pytest.raises(BillingError, match="give a future startTime"):
            rate_plan_update(plan=plan, spec=replace(change, start_time=start), actor=None)
    plan.refresh_from_db()
    assert RatePlan.objects.count() == 1 and plan.end_time is None
    assert (plan.setup_fee, plan.recurring_fee) == (usd("1"), usd("2"))

    start = timezone.now() + timedelta(days=7)
    successor = rate_plan_update(plan=plan, spec=replace(change, start_time=start), actor=None)
    plan.refresh_from_db()
    assert successor.pk != plan.pk
    assert plan.end_time == start == successor.start_time
    assert (plan.setup_fee, plan.recurring_fee) == (usd("1"), usd("2"))
    assert (successor.setup_fee, successor.recurring_fee) == (usd("3"), usd("4"))
    assert successor.state == RatePlan.State.PUBLISHED
    # The buyer keeps the price they bought; the new one is in force from its start.
    subscription.refresh_from_db()
    assert subscription.rate_plan == plan
    assert rate_plan_in_force(product=plan.product) == plan
    assert rate_plan_in_force(product=plan.product, at=start) == successor
    entry = AuditLogEntry.objects.get(action="rate_plan.update")
    assert entry.data["now_priced_by"] == str(successor.public_id)
    assert Subscription.objects.count() == 1


def test_a_change_of_a_bought_plan_must_start_before_it_ends(developer):
    now = timezone.now()
    plan = published_plan(end=now + timedelta(days=3))
    subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    )
    with pytest.raises(BillingError, match="must start before this one ends"):
        rate_plan_update(
            plan=plan,
            spec=PlanSpec(display_name="S", currency="USD", start_time=now + timedelta(days=4)),
            actor=None,
        )
    plan.refresh_from_db()
    assert plan.end_time is not None and plan.end_time < now + timedelta(days=4)
    assert RatePlan.objects.count() == 1
