"""API products and rate plans in the Django admin: for "Administer monetization" only, fees typed
as amounts of the plan's currency, and every save through the catalog services, so the admin
refuses what the API refuses, in the same words, changes nothing then, and audits each change."""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from billing.ledger.entries import Actor
from billing.models import ApiProduct, AuditLogEntry, RatePlan, Subscription
from billing.subscriptions.services import subscription_purchase
from tests.conftest import usd
from tests.factories import ApiProductFactory, published_plan

pytestmark = pytest.mark.django_db

WEATHER_BANDS = "0-100: 0\n100-200: 0.015\n200-: 0.01"


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def product_form(**changes: str) -> dict[str, str]:
    form = {
        "name": "weather-api",
        "display_name": "Weather API",
        "description": "Forecasts.",
        "quota": "",
        "quota_interval": "1",
        "quota_time_unit": "month",
    }
    return {**form, **changes}


def when(at: datetime) -> dict[str, str]:
    return {"0": f"{at:%Y-%m-%d}", "1": f"{at:%H:%M:%S}"}


def plan_form(product: ApiProduct | None = None, *, start: datetime | None = None, **changes):
    start = start or timezone.now() - timedelta(hours=1)
    form = {
        "display_name": "Standard",
        "description": "",
        "state": "PUBLISHED",
        "start_time_0": when(start)["0"],
        "start_time_1": when(start)["1"],
        "end_time_0": "",
        "end_time_1": "",
        "currency": "USD",
        "setup_fee": "10.00",
        "recurring_fee": "5.00",
        "fee_frequency_months": "1",
        "consumption_pricing_type": "BANDED",
        "consumption_rates": WEATHER_BANDS,
        "revenue_share": "15",
    }
    if product is not None:
        form["product"] = str(product.pk)
    return {**form, **changes}


def add_plan(client, product: ApiProduct, **changes):
    return client.post(reverse("admin:billing_rateplan_add"), plan_form(product, **changes))


def change_plan(client, plan: RatePlan, **changes):
    url = reverse("admin:billing_rateplan_change", args=[plan.pk])
    return client.post(url, plan_form(**changes))


def audit_actions(user) -> list[str]:
    return list(AuditLogEntry.objects.filter(actor=user).order_by("id").values_list("action", flat=True))  # fmt: skip


# ---- Who may ----


def admin_urls() -> list[str]:
    return [
        "admin:billing_apiproduct_changelist",
        "admin:billing_apiproduct_add",
        "admin:billing_rateplan_changelist",
        "admin:billing_rateplan_add",
        "admin:billing_subscription_changelist",
    ]


@pytest.mark.parametrize("url_name", admin_urls())
def test_an_admin_without_the_permission_gets_403(client, admin_without_permission, url_name):
    client.force_login(admin_without_permission)
    assert client.get(reverse(url_name)).status_code == HTTPStatus.FORBIDDEN


@pytest.mark.parametrize("url_name", admin_urls())
@pytest.mark.parametrize("who", ["developer", None])
def test_developers_and_anonymous_are_sent_to_sign_in(client, request, who, url_name):
    if who:
        client.force_login(request.getfixturevalue(who))
    response = client.get(reverse(url_name))
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("admin:login"))


def test_nobody_without_the_permission_changes_the_catalog(
    client, admin_without_permission, developer
):
    plan = published_plan(setup="1")
    audited = AuditLogEntry.objects.count()
    for who in (admin_without_permission, developer):
        client.force_login(who)
        client.post(reverse("admin:billing_apiproduct_add"), product_form(name="evil"))
        change_plan(client, plan, setup_fee="0.00")
        client.post(reverse("admin:billing_rateplan_delete", args=[plan.pk]), {"post": "yes"})
    assert not ApiProduct.objects.filter(name="evil").exists()
    plan.refresh_from_db()
    assert plan.setup_fee == usd("1")
    assert AuditLogEntry.objects.count() == audited


def test_the_permission_alone_opens_the_catalog_and_shows_it_on_the_admin_index(
    client, admin_without_permission
):
    admin_without_permission.user_permissions.add(
        Permission.objects.get(codename="administer_monetization")
    )
    client.force_login(admin_without_permission)
    index = page_text(client.get(reverse("admin:index")))
    assert "API products" in index and "Rate plans" in index
    assert client.get(reverse("admin:billing_rateplan_add")).status_code == HTTPStatus.OK


# ---- Products ----


def test_an_admin_adds_a_product_and_changes_it(client, portal_admin):
    client.force_login(portal_admin)
    response = client.post(
        reverse("admin:billing_apiproduct_add"),
        product_form(name="maps-api", display_name="Maps API", quota="1000", quota_time_unit="day"),
    )
    assert response.status_code == HTTPStatus.FOUND
    product = ApiProduct.objects.get(name="maps-api")
    assert (product.display_name, product.quota, product.quota_time_unit) == (
        "Maps API",
        1000,
        "day",
    )

    url = reverse("admin:billing_apiproduct_change", args=[product.pk])
    # The name is in every path and key: the form does not offer it, and a posted one is ignored.
    assert 'name="name"' not in client.get(url).content.decode()
    response = client.post(url, product_form(name="renamed", display_name="Maps", quota=""))
    assert response.status_code == HTTPStatus.FOUND
    product.refresh_from_db()
    assert (product.name, product.display_name, product.quota) == ("maps-api", "Maps", None)
    assert audit_actions(portal_admin) == ["api_product.create", "api_product.update"]
    changelist = page_text(client.get(reverse("admin:billing_apiproduct_changelist")))
    assert "Maps" in changelist and "none" in changelist


def test_a_taken_name_is_refused_with_the_services_words(client, portal_admin):
    ApiProductFactory(name="weather-api")
    client.force_login(portal_admin)
    response = client.post(reverse("admin:billing_apiproduct_add"), product_form())
    assert response.status_code == HTTPStatus.OK
    assert "An API product named 'weather-api' exists already." in page_text(response)
    assert ApiProduct.objects.filter(name="weather-api").count() == 1
    assert audit_actions(portal_admin) == []


def test_a_zero_quota_is_refused(client, portal_admin):
    client.force_login(portal_admin)
    response = client.post(reverse("admin:billing_apiproduct_add"), product_form(quota="0"))
    assert "quota: give a positive number of calls, or none." in page_text(response)
    assert not ApiProduct.objects.exists()


def test_the_product_page_lists_its_plans_with_links_and_money(client, portal_admin):
    plan = published_plan(setup="10", recurring="5", display_name="Standard")
    client.force_login(portal_admin)
    page = page_text(client.get(reverse("admin:billing_apiproduct_change", args=[plan.product.pk])))
    assert reverse("admin:billing_rateplan_change", args=[plan.pk]) in page
    assert "setup $10.00<br>$5.00 every month" in page
    assert f"{reverse('admin:billing_rateplan_add')}?product={plan.product.pk}" in page


def test_a_product_nobody_bought_is_deleted_with_its_plans(client, portal_admin):
    plan = published_plan()
    client.force_login(portal_admin)
    url = reverse("admin:billing_apiproduct_delete", args=[plan.product.pk])
    confirm = page_text(client.get(url))
    assert "Rate plan: Standard" in confirm
    assert client.post(url, {"post": "yes"}).status_code == HTTPStatus.FOUND
    assert not ApiProduct.objects.exists() and not RatePlan.objects.exists()
    assert audit_actions(portal_admin) == ["api_product.delete"]


def test_a_bought_product_stays(client, portal_admin, developer):
    plan = published_plan()
    subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    )
    client.force_login(portal_admin)
    url = reverse("admin:billing_apiproduct_delete", args=[plan.product.pk])
    confirm = page_text(client.get(url))
    assert "Cannot delete API product" in confirm and developer.email in confirm
    client.post(url, {"post": "yes"})
    assert ApiProduct.objects.filter(pk=plan.product.pk).exists()
    assert audit_actions(portal_admin) == []


# ---- Rate plans ----


def test_an_admin_adds_a_banded_plan_typed_as_money(client, portal_admin):
    product = ApiProductFactory()
    client.force_login(portal_admin)
    response = add_plan(client, product)
    assert response.status_code == HTTPStatus.FOUND, page_text(response)
    plan = RatePlan.objects.get(product=product)
    assert (plan.setup_fee, plan.recurring_fee) == (usd("10"), usd("5"))
    assert plan.state == RatePlan.State.PUBLISHED
    assert plan.consumption_rates == [
        {"start": 0, "end": 100, "fee_nanos": 0},
        {"start": 100, "end": 200, "fee_nanos": usd("0.015").nanos},
        {"start": 200, "end": 0, "fee_nanos": usd("0.01").nanos},
    ]
    assert plan.revenue_share_type == "FIXED"
    assert plan.revenue_share_rates == [{"start": 0, "end": 0, "share_percentage": "15"}]
    entry = AuditLogEntry.objects.get(action="rate_plan.create")
    assert entry.actor == portal_admin and entry.data["plan"] == str(plan.public_id)


def test_the_plan_pages_show_amounts_never_nanos(client, portal_admin):
    product = ApiProductFactory()
    client.force_login(portal_admin)
    add_plan(client, product)
    plan = RatePlan.objects.get(product=product)

    form = page_text(client.get(reverse("admin:billing_rateplan_change", args=[plan.pk])))
    assert 'name="setup_fee" value="10.00"' in form
    assert 'name="recurring_fee" value="5.00"' in form
    assert "0-100: 0.00\n100-200: 0.015\n200-: 0.01</textarea>" in form
    assert 'name="revenue_share" value="15"' in form
    changelist = page_text(client.get(reverse("admin:billing_rateplan_changelist")))
    assert "setup $10.00<br>$5.00 every month" in changelist
    assert "calls 100-200: $0.015<br>calls over 200: $0.01" in changelist
    assert "Fixed 15 %" in changelist
    for page in (form, changelist):
        assert "15000000" not in page and "10000000000" not in page


@pytest.mark.parametrize(
    "changes, field_or_message",
    [
        (
            {"consumption_rates": "0-100: 0\n50-200: 0.01"},
            "consumptionPricingRates[2] starts at 50 and overlaps the one before",
        ),
        (
            {"consumption_rates": "0-100: 0\n150-: 0.01"},
            "consumptionPricingRates[2] starts at 150 and leaves a gap",
        ),
        ({"consumption_rates": "0-100: -0.01"}, "a fee cannot be negative"),
        ({"setup_fee": "-1.00"}, "setupFee cannot be negative."),
        ({"revenue_share": "150"}, "a revenue share is between 0 and 100 %, not 150"),
        ({"consumption_rates": "0-100 costs 2"}, "Line 1: write “start-end: fee per call”"),
        ({"setup_fee": "ten"}, "ten"),
        ({"currency": "ZZZ"}, "currencyCode 'ZZZ' is not a known ISO 4217 currency."),
    ],
)
def test_a_refused_plan_shows_why_and_changes_nothing(
    client, portal_admin, changes, field_or_message
):
    product = ApiProductFactory()
    client.force_login(portal_admin)
    response = add_plan(client, product, **changes)
    assert response.status_code == HTTPStatus.OK
    assert field_or_message in page_text(response)
    assert not RatePlan.objects.exists()
    assert audit_actions(portal_admin) == []


def test_a_second_published_plan_in_force_is_refused(client, portal_admin):
    first = published_plan(display_name="Standard")
    client.force_login(portal_admin)
    response = add_plan(client, first.product, display_name="Premium")
    page = page_text(response)
    assert response.status_code == HTTPStatus.OK
    assert "Another published plan of" in page and "'Standard'" in page
    assert "only one published plan may be in force at a time" in page
    assert list(RatePlan.objects.values_list("display_name", flat=True)) == ["Standard"]
    # As a draft it may wait beside the published one.
    assert add_plan(client, first.product, display_name="Premium", state="DRAFT").status_code == (
        HTTPStatus.FOUND
    )


def test_an_end_before_the_start_is_refused(client, portal_admin):
    product = ApiProductFactory()
    start = timezone.now() + timedelta(days=2)
    end = start - timedelta(days=1)
    client.force_login(portal_admin)
    response = add_plan(
        client, product, start=start, end_time_0=when(end)["0"], end_time_1=when(end)["1"]
    )
    assert "endTime must be after startTime." in page_text(response)
    assert not RatePlan.objects.exists()


def test_a_draft_is_changed_in_place_and_audited(client, portal_admin):
    product = ApiProductFactory()
    client.force_login(portal_admin)
    add_plan(client, product, state="DRAFT")
    plan = RatePlan.objects.get()
    response = change_plan(
        client, plan, state="DRAFT", setup_fee="12.50", consumption_rates="0-: 0.002",
        consumption_pricing_type="FIXED_PER_UNIT", revenue_share="",
    )  # fmt: skip
    assert response.status_code == HTTPStatus.FOUND, page_text(response)
    plan.refresh_from_db()
    assert RatePlan.objects.count() == 1
    assert plan.setup_fee == usd("12.50")
    assert plan.consumption_rates == [{"start": 0, "end": 0, "fee_nanos": usd("0.002").nanos}]
    assert (plan.revenue_share_type, plan.revenue_share_rates) == ("", [])
    assert audit_actions(portal_admin) == ["rate_plan.create", "rate_plan.update"]


def test_a_refused_change_leaves_the_plan_as_it_was(client, portal_admin):
    plan = published_plan(setup="1")
    client.force_login(portal_admin)
    response = change_plan(client, plan, setup_fee="3.00", consumption_rates="0-0: 1\n5-9: 1")
    assert "has no end (0), so no rate may follow it" in page_text(response)
    plan.refresh_from_db()
    assert plan.setup_fee == usd("1") and plan.consumption_rates == []
    assert audit_actions(portal_admin) == []


def test_a_bought_plan_changes_only_as_a_new_plan_from_a_future_start(
    client, portal_admin, developer
):
    plan = published_plan(setup="1", recurring="2")
    subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    )
    client.force_login(portal_admin)

    refused = change_plan(client, plan, setup_fee="9.00")  # the start an hour ago
    assert "This plan has been bought" in page_text(refused)
    assert RatePlan.objects.count() == 1

    start = (timezone.now() + timedelta(days=10)).replace(microsecond=0)
    response = change_plan(client, plan, start=start, setup_fee="9.00")
    assert response.status_code == HTTPStatus.FOUND
    successor = RatePlan.objects.exclude(pk=plan.pk).get()
    plan.refresh_from_db()
    assert plan.end_time == start == successor.start_time
    assert (plan.setup_fee, successor.setup_fee) == (usd("1"), usd("9"))
    assert Subscription.objects.get().rate_plan == plan  # the buyer's price stays
    shown = page_text(client.get(response["Location"]))
    assert "the change is a new plan from" in shown


def test_a_plan_nobody_bought_is_deleted_and_a_bought_one_stays(client, portal_admin, developer):
    bought = published_plan(display_name="Bought")
    subscription_purchase(
        account=developer.billing_account, product=bought.product, actor=Actor.system()
    )
    unsold = published_plan(display_name="Unsold")
    client.force_login(portal_admin)

    url = reverse("admin:billing_rateplan_delete", args=[bought.pk])
    assert "Cannot delete rate plan" in page_text(client.get(url))
    client.post(url, {"post": "yes"})
    url = reverse("admin:billing_rateplan_delete", args=[unsold.pk])
    assert client.post(url, {"post": "yes"}).status_code == HTTPStatus.FOUND
    assert list(RatePlan.objects.values_list("display_name", flat=True)) == ["Bought"]
    assert audit_actions(portal_admin) == ["rate_plan.delete"]


# ---- Subscriptions: read-only ----


def test_subscriptions_are_listed_read_only(client, portal_admin, developer):
    plan = published_plan(display_name="Standard")
    subscription = subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    ).subscription
    client.force_login(portal_admin)

    changelist = page_text(client.get(reverse("admin:billing_subscription_changelist")))
    assert developer.email in changelist and "Active" in changelist
    assert reverse("admin:billing_subscription_add") not in changelist
    url = reverse("admin:billing_subscription_change", args=[subscription.pk])
    detail = client.get(url)
    assert detail.status_code == HTTPStatus.OK
    assert 'name="start_time' not in detail.content.decode()
    client.post(url, {"end_time_0": "2000-01-01", "end_time_1": "00:00:00"})
    subscription.refresh_from_db()
    assert subscription.end_time is None
    assert client.get(reverse("admin:billing_subscription_add")).status_code == (
        HTTPStatus.FORBIDDEN
    )
