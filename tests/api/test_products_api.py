"""API products and rate plans under /v1/organizations/{org}/apiproducts, driven as a
back-office script would: Apigee X's JSON in and out, every refusal of a price the catalog's
rules forbid (400, nothing changed), a bought plan that changes only from a future start, drafts
seen only by who may see them, and who may change what."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.models import User
from billing.catalog.services import PlanSpec, rate_plan_create
from billing.ledger.entries import Actor
from billing.models import ApiProduct, AuditLogEntry, RatePlan, Subscription
from billing.subscriptions.services import subscription_purchase
from tests.api.conftest import Api, billing_state, error_of
from tests.factories import AdminFactory, ApiProductFactory, published_plan

pytestmark = pytest.mark.django_db

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---- helpers ----


def products_path(suffix: str = "", *, org: str | None = None) -> str:
    base = f"/v1/organizations/{org or settings.PORTAL_ORG}/apiproducts"
    return f"{base}/{suffix}" if suffix else base


def plans_path(product: str, plan: str = "") -> str:
    return products_path(f"{product}/rateplans" + (f"/{plan}" if plan else ""))


def ms(at: datetime) -> str:
    return str((at - EPOCH) // timedelta(milliseconds=1))


def from_ms(value: str) -> datetime:
    return EPOCH + timedelta(milliseconds=int(value))


def usd(units: str, nanos: int | None = None) -> dict[str, Any]:
    money: dict[str, Any] = {"currencyCode": "USD", "units": units}
    if nanos is not None:
        money["nanos"] = nanos
    return money


def catalog_state() -> dict[str, Any]:
    """Everything a catalog request could change: products, plans, subscriptions, money, audit."""
    return {
        **billing_state(),
        "products": list(ApiProduct.objects.order_by("pk").values()),
        "plans": list(RatePlan.objects.order_by("pk").values()),
        "subscriptions": list(Subscription.objects.order_by("pk").values()),
    }


def product_body(**fields: Any) -> dict[str, Any]:
    body = {
        "name": "weather-api",
        "displayName": "Weather API",
        "description": "Forecasts by the hour.",
        "quota": "10000",
        "quotaInterval": "1",
        "quotaTimeUnit": "month",
    }
    body.update(fields)
    return body


START = timezone.now().replace(microsecond=0) - timedelta(days=1)


def plan_body(**fields: Any) -> dict[str, Any]:
    """A banded, published USD plan with every part Apigee X's RatePlan has."""
    body: dict[str, Any] = {
        "apiproduct": "weather-api",
        "displayName": "Standard",
        "description": "Pay as you go.",
        "billingPeriod": "MONTHLY",
        "currencyCode": "USD",
        "setupFee": usd("10"),
        "fixedRecurringFee": usd("30", 500000000),
        "fixedFeeFrequency": 1,
        "consumptionPricingType": "BANDED",
        "consumptionPricingRates": [
            {"start": "0", "end": "1000", "fee": usd("0", 10000000)},
            {"start": "1000", "end": "0", "fee": usd("0", 5000000)},
        ],
        "revenueShareType": "FIXED",
        "revenueShareRates": [{"start": "0", "end": "0", "sharePercentage": 12.5}],
        "state": "PUBLISHED",
        "startTime": ms(START),
    }
    body.update(fields)
    return body


@pytest.fixture
def admin_token(api: Api, portal_admin: User) -> str:
    return api.token_for(portal_admin)


@pytest.fixture
def weather(db: None) -> ApiProduct:
    return ApiProductFactory(name="weather-api", display_name="Weather API")


def _create_plan(api: Api, token: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = api.call("POST", plans_path("weather-api"), body or plan_body(), token=token)
    assert response.status_code == HTTPStatus.OK, response.content
    return response.json()


def _subscriber(plan: RatePlan, developer: User) -> Subscription:
    return subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    ).subscription


# ---- API products ----


def test_admin_creates_reads_updates_and_deletes_a_product(api, admin_token, portal_admin):
    created = api.call("POST", products_path(), product_body(), token=admin_token)

    assert created.status_code == HTTPStatus.OK, created.content
    answer = dict(created.json())
    times = {key: answer.pop(key) for key in ("createdAt", "lastModifiedAt")}
    assert answer == product_body()
    product = ApiProduct.objects.get(name="weather-api")
    assert (product.display_name, product.quota, product.quota_interval) == (
        "Weather API",
        10000,
        1,
    )
    assert times == {"createdAt": ms(product.created_at), "lastModifiedAt": ms(product.updated_at)}
    assert api.call("GET", products_path("weather-api"), token=admin_token).json() == (
        created.json()
    )

    changed = api.call(
        "PUT",
        products_path("weather-api"),
        product_body(displayName="Weather API v2", quota=500, quotaTimeUnit="day"),
        token=admin_token,
    )

    assert changed.status_code == HTTPStatus.OK, changed.content
    assert changed.json()["displayName"] == "Weather API v2"
    assert (changed.json()["quota"], changed.json()["quotaTimeUnit"]) == ("500", "day")
    listed = api.call("GET", products_path(), token=admin_token).json()
    assert listed == {"apiProduct": [changed.json()]}

    deleted = api.call("DELETE", products_path("weather-api"), token=admin_token)

    assert deleted.status_code == HTTPStatus.OK
    assert deleted.json()["name"] == "weather-api"
    assert not ApiProduct.objects.exists()
    error_of(api.call("GET", products_path("weather-api"), token=admin_token), HTTPStatus.NOT_FOUND)
    actions = AuditLogEntry.objects.filter(actor=portal_admin).order_by("pk")
    assert list(actions.values_list("action", flat=True)) == [
        "api_product.create",
        "api_product.update",
        "api_product.delete",
    ]


def test_a_product_without_a_quota_leaves_the_quota_out(api, admin_token):
    body = {"name": "maps", "displayName": "Maps"}

    response = api.call("POST", products_path(), body, token=admin_token)

    answer = response.json()
    assert response.status_code == HTTPStatus.OK
    assert {k: v for k, v in answer.items() if not k.endswith("At")} == {
        "name": "maps",
        "displayName": "Maps",
        "description": "",
    }
    assert ApiProduct.objects.get(name="maps").quota is None


def test_products_are_listed_by_display_name(api, admin_token, developer):
    ApiProductFactory(name="zeta", display_name="B product")
    ApiProductFactory(name="alpha", display_name="C product")
    ApiProductFactory(name="mid", display_name="A product")

    listed = api.call("GET", products_path(), token=api.token_for(developer)).json()

    assert [p["name"] for p in listed["apiProduct"]] == ["mid", "zeta", "alpha"]


BAD_PRODUCTS: dict[str, tuple[dict[str, Any], str]] = {
    "no name": ({"displayName": "Weather"}, "name: Field required"),
    "name with a space": (product_body(name="weather api"), "name: use 1 to 100 letters"),
    "name too long": (product_body(name="w" * 101), "name: use 1 to 100 letters"),
    "no display name": ({"name": "weather-api"}, "displayName: Field required"),
    "blank display name": (product_body(displayName="  "), "displayName is required"),
    "display name not a string": (product_body(displayName=5), "displayName: Input should be"),
    "display name with a NUL": (product_body(displayName="Wea\x00ther"), "control characters"),
    "description with a NUL": (product_body(description="a\x00b"), "control characters"),
    "quota zero": (product_body(quota="0"), "quota: give a positive number"),
    "quota a fraction": (product_body(quota="1.5"), "quota must be a whole number"),
    "quota a boolean": (product_body(quota=True), "quota must be a whole number"),
    "quota past int32": (product_body(quota=str(2**31)), "quota must be between 0 and"),
    "quota interval zero": (product_body(quotaInterval=0), "quotaInterval must be at least 1"),
    "quota unit a week": (product_body(quotaTimeUnit="week"), "minute, hour, day or month"),
    "unknown field": (product_body(approvalType="auto"), "approvalType: Extra inputs"),
    "an array": ([product_body()], "must be a JSON object, not an array"),
}


@pytest.mark.parametrize("case", BAD_PRODUCTS)
def test_a_bad_product_is_refused_naming_what_is_wrong(api, admin_token, case):
    body, message = BAD_PRODUCTS[case]
    before = catalog_state()

    response = api.call("POST", products_path(), body, token=admin_token)

    error = error_of(response, HTTPStatus.BAD_REQUEST)
    assert message in error["message"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert catalog_state() == before


def test_a_bad_product_update_changes_nothing(api, admin_token, weather):
    before = catalog_state()

    response = api.call(
        "PUT", products_path("weather-api"), product_body(quota="-5"), token=admin_token
    )

    assert "quota must be between 0 and" in error_of(response, HTTPStatus.BAD_REQUEST)["message"]
    assert catalog_state() == before


def test_a_second_product_of_the_same_name_already_exists(api, admin_token, weather):
    before = catalog_state()

    response = api.call("POST", products_path(), product_body(), token=admin_token)

    error = error_of(response, HTTPStatus.CONFLICT)
    assert error["status"] == "ALREADY_EXISTS"
    assert "weather-api" in error["message"]
    assert catalog_state() == before


def test_a_products_name_cannot_change(api, admin_token, weather):
    before = catalog_state()

    response = api.call(
        "PUT", products_path("weather-api"), product_body(name="climate-api"), token=admin_token
    )

    assert "name cannot change" in error_of(response, HTTPStatus.BAD_REQUEST)["message"]
    assert catalog_state() == before


def test_a_put_without_a_name_keeps_the_name(api, admin_token, weather):
    body = product_body()
    del body["name"]

    response = api.call("PUT", products_path("weather-api"), body, token=admin_token)

    assert response.status_code == HTTPStatus.OK
    assert response.json()["name"] == "weather-api"


def test_a_bought_product_is_not_deleted(api, admin_token, developer):
    plan = published_plan(ApiProductFactory(name="weather-api"))
    _subscriber(plan, developer)
    before = catalog_state()

    response = api.call("DELETE", products_path("weather-api"), token=admin_token)

    error = error_of(response, HTTPStatus.BAD_REQUEST)
    assert error["status"] == "FAILED_PRECONDITION"
    assert "has been bought" in error["message"]
    assert catalog_state() == before


@pytest.mark.parametrize(
    "method, suffix",
    [
        ("GET", "nothing-here"),
        ("PUT", "nothing-here"),
        ("DELETE", "nothing-here"),
        ("GET", "nothing-here/rateplans"),
        ("POST", "nothing-here/rateplans"),
        ("GET", "a\x00b"),
        ("GET", "x" * 101),
    ],
)
def test_an_unknown_product_is_not_found(api, admin_token, weather, method, suffix):
    body = product_body() if method == "PUT" else plan_body() if method == "POST" else None
    before = catalog_state()

    response = api.call(method, products_path(suffix), body, token=admin_token)

    assert error_of(response, HTTPStatus.NOT_FOUND)["status"] == "NOT_FOUND"
    assert catalog_state() == before


@pytest.mark.parametrize("method, body", [("GET", None), ("POST", product_body(name="new"))])
def test_an_unknown_organization_is_not_found(api, admin_token, method, body):
    before = catalog_state()

    response = api.call(method, products_path(org="other-org"), body, token=admin_token)

    assert "other-org" in error_of(response, HTTPStatus.NOT_FOUND)["message"]
    assert catalog_state() == before


# ---- rate plans ----


def test_admin_creates_a_plan_and_reads_it_back_as_apigee_x_shapes_it(
    api, admin_token, weather, developer
):
    before = timezone.now()

    response = api.call("POST", plans_path("weather-api"), plan_body(), token=admin_token)

    assert response.status_code == HTTPStatus.OK, response.content
    answer = dict(response.json())
    plan = RatePlan.objects.get()
    extra = {key: answer.pop(key) for key in ("name", "createdAt", "lastModifiedAt")}
    assert answer == plan_body()  # every field as sent, in Apigee X's JSON
    assert extra["name"] == str(plan.public_id)
    assert before - timedelta(seconds=1) <= from_ms(extra["createdAt"]) <= timezone.now()
    assert (plan.setup_fee_nanos, plan.recurring_fee_nanos) == (10 * 10**9, 30_500_000_000)
    assert plan.consumption_rates == [
        {"start": 0, "end": 1000, "fee_nanos": 10_000_000},
        {"start": 1000, "end": 0, "fee_nanos": 5_000_000},
    ]
    assert plan.revenue_share_rates == [{"start": 0, "end": 0, "share_percentage": "12.5"}]
    assert (plan.state, plan.start_time, plan.end_time) == ("PUBLISHED", START, None)

    # A developer's token reads the published plan exactly as the admin's did.
    token = api.token_for(developer)
    assert api.call("GET", plans_path("weather-api", extra["name"]), token=token).json() == (
        response.json()
    )
    listed = api.call("GET", plans_path("weather-api"), token=token).json()
    assert listed == {"ratePlans": [response.json()]}


def test_a_plan_with_fixed_per_unit_pricing_and_no_share(api, admin_token, weather):
    body = plan_body(
        setupFee=usd("0"),
        consumptionPricingType="FIXED_PER_UNIT",
        consumptionPricingRates=[{"start": 0, "end": 0, "fee": usd("0", 2000000)}],
        endTime=ms(START + timedelta(days=30)),
    )
    del body["revenueShareType"], body["revenueShareRates"], body["fixedFeeFrequency"]

    answer = _create_plan(api, admin_token, body)

    assert answer["setupFee"] == usd("0")
    assert answer["fixedFeeFrequency"] == 1
    assert answer["consumptionPricingRates"] == [
        {"start": "0", "end": "0", "fee": usd("0", 2000000)}
    ]
    assert "revenueShareType" not in answer and "revenueShareRates" not in answer
    assert from_ms(answer["endTime"]) == START + timedelta(days=30)


def test_a_plan_without_consumption_pricing_leaves_it_out(api, admin_token, weather):
    body = plan_body(state="DRAFT")
    del body["consumptionPricingType"], body["consumptionPricingRates"], body["startTime"]

    answer = _create_plan(api, admin_token, body)

    assert "consumptionPricingType" not in answer and "consumptionPricingRates" not in answer
    assert answer["state"] == "DRAFT"
    assert abs(from_ms(answer["startTime"]) - timezone.now()) < timedelta(seconds=5)


def _rates(*bands: tuple[Any, Any, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"start": start, "end": end, "fee": fee} for start, end, fee in bands]


CENT = usd("0", 10000000)
BAD_PLANS: dict[str, tuple[dict[str, Any], str]] = {
    "bands overlap": (
        {"consumptionPricingRates": _rates(("0", "1000", CENT), ("900", "0", CENT))},
        "consumptionPricingRates[2] starts at 900 and overlaps the one before",
    ),
    "bands leave a gap": (
        {"consumptionPricingRates": _rates(("0", "1000", CENT), ("1100", "0", CENT))},
        "consumptionPricingRates[2] starts at 1100 and leaves a gap",
    ),
    "first band not from zero": (
        {"consumptionPricingRates": _rates(("10", "0", CENT))},
        "consumptionPricingRates[1] starts at 10 and leaves a gap",
    ),
    "a band after an open-ended one": (
        {"consumptionPricingRates": _rates(("0", "0", CENT), ("0", "100", CENT))},
        "consumptionPricingRates[1] has no end (0), so no rate may follow it",
    ),
    "a band ending before it starts": (
        {"consumptionPricingRates": _rates(("0", "100", CENT), ("100", "50", CENT))},
        "consumptionPricingRates[2] must end after it starts",
    ),
    "a negative band fee": (
        {"consumptionPricingRates": _rates(("0", "0", usd("-1")))},
        "consumptionPricingRates[1]: a fee cannot be negative",
    ),
    "a negative setup fee": ({"setupFee": usd("-10")}, "setupFee cannot be negative"),
    "a negative recurring fee": (
        {"fixedRecurringFee": usd("0", -1)},
        "fixedRecurringFee cannot be negative",
    ),
    "a setup fee in another currency": (
        {"setupFee": {"currencyCode": "EUR", "units": "10"}},
        "setupFee is in EUR, but the plan's currency is USD",
    ),
    "a recurring fee in another currency": (
        {"fixedRecurringFee": {"currencyCode": "GBP", "units": "1"}},
        "fixedRecurringFee is in GBP, but the plan's currency is USD",
    ),
    "a band fee in another currency": (
        {"consumptionPricingRates": _rates(("0", "0", {"currencyCode": "EUR", "units": "1"}))},
        "consumptionPricingRates[1].fee is in EUR, but the plan's currency is USD",
    ),
    "a revenue share above 100 %": (
        {"revenueShareRates": [{"start": "0", "end": "0", "sharePercentage": 100.5}]},
        "revenueShareRates[1].sharePercentage: a revenue share is between 0 and 100 %",
    ),
    "a negative revenue share": (
        {"revenueShareRates": [{"start": "0", "end": "0", "sharePercentage": "-1"}]},
        "a revenue share is between 0 and 100 %",
    ),
    "a revenue share that is not a number": (
        {"revenueShareRates": [{"start": "0", "end": "0", "sharePercentage": "ten"}]},
        "'ten' is not a percentage",
    ),
    "two revenue share rates": (
        {"revenueShareRates": [{"sharePercentage": 1}, {"sharePercentage": 2}]},
        "A FIXED revenue share takes exactly one rate",
    ),
    "two rates for a fixed price per unit": (
        {
            "consumptionPricingType": "FIXED_PER_UNIT",
            "consumptionPricingRates": _rates(("0", "10", CENT), ("10", "0", CENT)),
        },
        "FIXED_PER_UNIT takes exactly one rate",
    ),
    "an unknown pricing type": (
        {"consumptionPricingType": "TIERED"},
        "consumptionPricingType 'TIERED' is not supported",
    ),
    "rates without a pricing type": (
        {"consumptionPricingType": None},
        "consumptionPricingRates need a consumptionPricingType",
    ),
    "a band start that is a fraction": (
        {"consumptionPricingRates": _rates(("0.5", "0", CENT))},
        "consumptionPricingRates[1].start must be a whole number",
    ),
    "a fee that is not money": (
        {"setupFee": {"currencyCode": "USD", "units": "ten"}},
        "setupFee.units must be a whole number",
    ),
    "a billing period other than monthly": ({"billingPeriod": "WEEKLY"}, "MONTHLY"),
    "a fee frequency of zero months": (
        {"fixedFeeFrequency": 0},
        "fixedFeeFrequency is a number of months, from 1 to 120",
    ),
    "an unknown state": ({"state": "LIVE"}, "state must be DRAFT or PUBLISHED"),
    "a lower-case currency": ({"currencyCode": "usd"}, "three-letter ISO 4217 code"),
    "a currency cards cannot pay": (
        {
            "currencyCode": "CLF",
            **dict.fromkeys(["setupFee", "fixedRecurringFee", "consumptionPricingType"]),
            "consumptionPricingRates": None,
        },
        "currencyCode: Stripe does not take payments in CLF",
    ),
    "a start that is not a time": ({"startTime": "yesterday"}, "startTime must be a whole"),
    "a start past the year 9999": ({"startTime": "9" * 16}, "startTime must be between 0"),
    "an end before the start": (
        {"endTime": ms(START - timedelta(hours=1))},
        "endTime must be after startTime",
    ),
    "another product": ({"apiproduct": "maps-api"}, "the path names 'weather-api'"),
    "no display name": ({"displayName": " "}, "displayName is required"),
    "a display name too long": ({"displayName": "x" * 201}, "at most 200 characters"),
    "a NUL in the description": ({"description": "a\x00b"}, "control characters"),
    "a misspelt field": ({"consumptionPricingRate": []}, "consumptionPricingRate: Extra inputs"),
}


@pytest.mark.parametrize("case", BAD_PLANS)
def test_a_plan_the_rules_forbid_is_refused_and_nothing_changes(api, admin_token, weather, case):
    fields, message = BAD_PLANS[case]
    body = plan_body(**fields)
    body = {key: value for key, value in body.items() if value is not None}
    before = catalog_state()

    response = api.call("POST", plans_path("weather-api"), body, token=admin_token)

    error = error_of(response, HTTPStatus.BAD_REQUEST)
    assert message in error["message"], error["message"]
    assert catalog_state() == before


@pytest.mark.parametrize("case", ["bands overlap", "a band fee in another currency"])
def test_a_plan_update_the_rules_forbid_changes_nothing(api, admin_token, weather, case):
    draft = _create_plan(api, admin_token, plan_body(state="DRAFT"))
    fields, message = BAD_PLANS[case]
    before = catalog_state()

    response = api.call(
        "PUT", plans_path("weather-api", draft["name"]), plan_body(**fields), token=admin_token
    )

    assert message in error_of(response, HTTPStatus.BAD_REQUEST)["message"]
    assert catalog_state() == before


def test_a_second_published_plan_in_force_at_the_same_instant_is_refused(api, admin_token, weather):
    _create_plan(api, admin_token, plan_body(displayName="Standard"))
    before = catalog_state()

    overlapping = api.call(
        "POST",
        plans_path("weather-api"),
        plan_body(displayName="Premium", startTime=ms(START + timedelta(days=3))),
        token=admin_token,
    )

    message = error_of(overlapping, HTTPStatus.BAD_REQUEST)["message"]
    assert "Another published plan of 'weather-api', 'Standard', is in force" in message
    assert catalog_state() == before
    # As a draft it may wait beside it; publishing it is refused the same way.
    draft = _create_plan(api, admin_token, plan_body(displayName="Premium", state="DRAFT"))
    before = catalog_state()
    published = api.call(
        "PUT",
        plans_path("weather-api", draft["name"]),
        plan_body(displayName="Premium", state="PUBLISHED"),
        token=admin_token,
    )
    assert "only one published plan" in error_of(published, HTTPStatus.BAD_REQUEST)["message"]
    assert catalog_state() == before


def test_plans_one_after_the_other_are_both_published(api, admin_token, weather):
    switch = START + timedelta(days=10)
    first = _create_plan(api, admin_token, plan_body(endTime=ms(switch)))
    second = _create_plan(api, admin_token, plan_body(displayName="Next", startTime=ms(switch)))

    listed = api.call("GET", plans_path("weather-api"), token=admin_token).json()["ratePlans"]

    assert [plan["name"] for plan in listed] == [first["name"], second["name"]]


def test_a_plan_nobody_bought_is_edited_in_place(api, admin_token, weather):
    draft = _create_plan(api, admin_token, plan_body(state="DRAFT"))

    response = api.call(
        "PUT",
        plans_path("weather-api", draft["name"]),
        plan_body(setupFee=usd("12", 500000000), state="PUBLISHED"),
        token=admin_token,
    )

    assert response.status_code == HTTPStatus.OK, response.content
    answer = response.json()
    assert answer["name"] == draft["name"]
    assert (answer["setupFee"], answer["state"]) == (usd("12", 500000000), "PUBLISHED")
    assert answer["createdAt"] == draft["createdAt"]
    assert RatePlan.objects.get().setup_fee_nanos == 12_500_000_000


def test_a_put_without_a_start_keeps_the_start(api, admin_token, weather):
    plan = _create_plan(api, admin_token, plan_body(state="DRAFT"))
    body = plan_body(state="DRAFT", displayName="Renamed")
    del body["startTime"]

    answer = api.call("PUT", plans_path("weather-api", plan["name"]), body, token=admin_token)

    assert answer.json()["startTime"] == plan["startTime"] == ms(START)
    assert answer.json()["displayName"] == "Renamed"


def test_a_put_naming_another_plan_is_refused(api, admin_token, weather):
    plan = _create_plan(api, admin_token, plan_body(state="DRAFT"))
    before = catalog_state()
    body = plan_body(name="00000000-0000-0000-0000-000000000000")

    response = api.call("PUT", plans_path("weather-api", plan["name"]), body, token=admin_token)

    assert "the path names plan" in error_of(response, HTTPStatus.BAD_REQUEST)["message"]
    assert catalog_state() == before


def test_a_put_of_what_get_answered_changes_nothing_but_the_time(api, admin_token, weather):
    plan = _create_plan(api, admin_token, plan_body(state="DRAFT"))

    again = api.call("PUT", plans_path("weather-api", plan["name"]), plan, token=admin_token)

    assert again.status_code == HTTPStatus.OK, again.content
    assert {k: v for k, v in again.json().items() if k != "lastModifiedAt"} == {
        k: v for k, v in plan.items() if k != "lastModifiedAt"
    }


def test_editing_a_bought_published_plan_makes_a_new_plan_from_its_start(
    api, admin_token, weather, developer, portal_admin
):
    old = RatePlan.objects.get(public_id=_create_plan(api, admin_token)["name"])
    subscription = _subscriber(old, developer)
    new_start = (timezone.now() + timedelta(days=7)).replace(microsecond=0)

    response = api.call(
        "PUT",
        plans_path("weather-api", str(old.public_id)),
        plan_body(fixedRecurringFee=usd("40"), startTime=ms(new_start)),
        token=admin_token,
    )

    assert response.status_code == HTTPStatus.OK, response.content
    answer = response.json()
    assert answer["name"] != str(old.public_id)
    assert (answer["fixedRecurringFee"], answer["startTime"]) == (usd("40"), ms(new_start))
    assert "endTime" not in answer
    old_answer = api.call("GET", plans_path("weather-api", str(old.public_id)), token=admin_token)
    assert old_answer.json()["endTime"] == ms(new_start)  # the old one ends as the new starts
    assert old_answer.json()["fixedRecurringFee"] == usd("30", 500000000)  # its price stays
    subscription.refresh_from_db()
    assert subscription.rate_plan_id == old.pk
    listed = api.call("GET", plans_path("weather-api"), token=admin_token).json()["ratePlans"]
    assert [plan["name"] for plan in listed] == [str(old.public_id), answer["name"]]
    entry = AuditLogEntry.objects.filter(action="rate_plan.update").get()
    assert (entry.actor, entry.data["now_priced_by"]) == (portal_admin, answer["name"])


@pytest.mark.parametrize(
    "start",
    [None, START, timezone.now() - timedelta(minutes=1)],
    ids=["no start", "its own start", "a past start"],
)
def test_editing_a_bought_published_plan_needs_a_future_start(
    api, admin_token, weather, developer, start
):
    old = RatePlan.objects.get(public_id=_create_plan(api, admin_token)["name"])
    _subscriber(old, developer)
    body = plan_body(fixedRecurringFee=usd("40"))
    if start is None:
        del body["startTime"]
    else:
        body["startTime"] = ms(start)
    before = catalog_state()

    response = api.call(
        "PUT", plans_path("weather-api", str(old.public_id)), body, token=admin_token
    )

    assert "give a future startTime" in error_of(response, HTTPStatus.BAD_REQUEST)["message"]
    assert catalog_state() == before


def test_a_plan_is_deleted_unless_it_was_bought(api, admin_token, weather, developer):
    draft = _create_plan(api, admin_token, plan_body(state="DRAFT"))
    bought = RatePlan.objects.get(
        public_id=_create_plan(api, admin_token, plan_body(startTime=ms(START)))["name"]
    )
    _subscriber(bought, developer)

    deleted = api.call("DELETE", plans_path("weather-api", draft["name"]), token=admin_token)
    before = catalog_state()
    kept = api.call("DELETE", plans_path("weather-api", str(bought.public_id)), token=admin_token)

    assert deleted.status_code == HTTPStatus.OK and deleted.json()["name"] == draft["name"]
    error = error_of(kept, HTTPStatus.BAD_REQUEST)
    assert (error["status"], "has been bought" in error["message"]) == ("FAILED_PRECONDITION", True)
    assert catalog_state() == before
    assert list(RatePlan.objects.values_list("public_id", flat=True)) == [bought.public_id]


@pytest.mark.parametrize(
    "plan_id",
    ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "a\x00b"],
    ids=["unknown", "not a uuid", "a NUL"],
)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_an_unknown_plan_is_not_found(api, admin_token, weather, plan_id, method):
    published_plan(weather)
    before = catalog_state()

    response = api.call(
        method,
        plans_path("weather-api", plan_id),
        plan_body() if method == "PUT" else None,
        token=admin_token,
    )

    assert error_of(response, HTTPStatus.NOT_FOUND)["status"] == "NOT_FOUND"
    assert catalog_state() == before


def test_a_plan_of_another_product_is_not_found_under_this_one(api, admin_token, weather):
    other = published_plan(ApiProductFactory(name="maps-api"))

    response = api.call("GET", plans_path("weather-api", str(other.public_id)), token=admin_token)

    error_of(response, HTTPStatus.NOT_FOUND)


# ---- drafts ----


def _draft(product: ApiProduct) -> RatePlan:
    spec = PlanSpec(display_name="Coming soon", currency="USD")
    return rate_plan_create(product=product, spec=spec, actor=None)


def _plan_viewer() -> User:
    viewer = AdminFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_rate_plan"))
    return viewer


def _monetization_admin() -> User:
    admin = AdminFactory()
    admin.user_permissions.add(Permission.objects.get(codename="administer_monetization"))
    return admin


READERS: dict[str, Callable[[Any], User]] = {
    "developer": lambda request: request.getfixturevalue("developer"),
    "admin without permission": lambda request: request.getfixturevalue("admin_without_permission"),
    "admin with View rate plan": lambda request: _plan_viewer(),
    "admin with Administer monetization": lambda request: _monetization_admin(),
    "portal admin": lambda request: request.getfixturevalue("portal_admin"),
}
SEES_DRAFTS = {"admin with View rate plan", "admin with Administer monetization", "portal admin"}


@pytest.mark.parametrize("reader", READERS)
def test_a_draft_is_seen_only_by_who_may_see_plans_being_prepared(api, request, weather, reader):
    published = published_plan(weather)
    draft = _draft(weather)
    token = api.token_for(READERS[reader](request))

    one = api.call("GET", plans_path("weather-api", str(draft.public_id)), token=token)
    listed = api.call("GET", plans_path("weather-api"), token=token).json()["ratePlans"]

    names = [plan["name"] for plan in listed]
    if reader in SEES_DRAFTS:
        assert one.status_code == HTTPStatus.OK and one.json()["state"] == "DRAFT"
        assert names == [str(published.public_id), str(draft.public_id)]
    else:
        # Not told it exists: the same answer as for a plan that does not.
        assert "not found" in error_of(one, HTTPStatus.NOT_FOUND)["message"]
        assert names == [str(published.public_id)]


def test_a_draft_cannot_be_changed_by_who_cannot_see_it(api, weather):
    draft = _draft(weather)
    token = api.token_for(AdminFactory())  # neither View rate plan nor Administer monetization
    before = catalog_state()

    response = api.call("DELETE", plans_path("weather-api", str(draft.public_id)), token=token)

    error_of(response, HTTPStatus.FORBIDDEN)
    assert catalog_state() == before


# ---- who may do what ----

ROLES = {
    "developer": "developer",
    "another developer": "other_developer",
    "admin without permission": "admin_without_permission",
    "portal admin": "portal_admin",
}
WRITES: dict[str, Callable[[RatePlan], tuple[str, str, Any]]] = {
    "create product": lambda plan: ("POST", products_path(), product_body(name="maps-api")),
    "update product": lambda plan: ("PUT", products_path("weather-api"), product_body()),
    "delete product": lambda plan: ("DELETE", products_path("weather-api"), None),
    "create plan": lambda plan: (
        "POST",
        plans_path("weather-api"),
        plan_body(state="DRAFT"),
    ),
    "update plan": lambda plan: (
        "PUT",
        plans_path("weather-api", str(plan.public_id)),
        plan_body(displayName="Renamed", startTime=ms(plan.start_time)),
    ),
    "delete plan": lambda plan: ("DELETE", plans_path("weather-api", str(plan.public_id)), None),
}
READS: dict[str, Callable[[RatePlan], tuple[str, str, Any]]] = {
    "list products": lambda plan: ("GET", products_path(), None),
    "get product": lambda plan: ("GET", products_path("weather-api"), None),
    "list plans": lambda plan: ("GET", plans_path("weather-api"), None),
    "get published plan": lambda plan: (
        "GET",
        plans_path("weather-api", str(plan.public_id)),
        None,
    ),
}


@pytest.mark.parametrize("operation", [*WRITES, *READS])
@pytest.mark.parametrize("role", [*ROLES, "anonymous"])
def test_permission_matrix(api, request, weather, role, operation):
    """Reads: any valid token. Changes: "Administer monetization" only."""
    plan = published_plan(weather)
    method, path, body = {**WRITES, **READS}[operation](plan)
    token = None if role == "anonymous" else api.token_for(request.getfixturevalue(ROLES[role]))
    before = catalog_state()

    response = api.call(method, path, body, token=token)

    if role == "anonymous":
        assert error_of(response, HTTPStatus.UNAUTHORIZED)["status"] == "UNAUTHENTICATED"
        assert catalog_state() == before
    elif operation in READS or role == "portal admin":
        assert response.status_code == HTTPStatus.OK, response.content
        if operation in WRITES:
            assert catalog_state() != before
    else:
        error = error_of(response, HTTPStatus.FORBIDDEN)
        assert "billing.administer_monetization" in error["message"]
        assert catalog_state() == before


@pytest.mark.parametrize("operation", WRITES)
def test_each_change_needs_exactly_administer_monetization(api, weather, operation):
    plan = published_plan(weather)
    method, path, body = WRITES[operation](plan)
    holder = _monetization_admin()
    others = AdminFactory()
    others.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="billing").exclude(
            codename="administer_monetization"
        )
    )

    refused = api.call(method, path, body, token=api.token_for(others))
    allowed = api.call(method, path, body, token=api.token_for(holder))

    assert "administer_monetization" in error_of(refused, HTTPStatus.FORBIDDEN)["message"]
    assert allowed.status_code == HTTPStatus.OK, allowed.content


def test_permission_is_checked_before_the_product_is_looked_up(api, developer):
    token = api.token_for(developer)

    response = api.call("PUT", products_path("nothing-here"), product_body(), token=token)

    error_of(response, HTTPStatus.FORBIDDEN)
