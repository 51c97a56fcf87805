"""`seed_demo` sells two API products, made through the catalog's services, once however often it
runs (the logins it makes are tested with sign-up, tests/accounts/)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from accounts.models import User
from billing.catalog.selectors import products_on_sale, rate_plan_in_force
from billing.ledger.entries import Actor
from billing.models import ApiProduct, AuditLogEntry, RatePlan
from billing.subscriptions.services import subscription_purchase
from tests.conftest import usd

pytestmark = pytest.mark.django_db


def test_seed_demo_sells_the_weather_and_maps_apis_once(capsys):
    call_command("seed_demo")
    call_command("seed_demo")

    out = capsys.readouterr().out
    assert "Weather API (weather-api): Standard plan" in out
    assert "Maps API (maps-api): Free plan" in out
    assert [p.name for p in products_on_sale()] == ["maps-api", "weather-api"]
    assert ApiProduct.objects.count() == 2 and RatePlan.objects.count() == 2
    assert AuditLogEntry.objects.filter(action="rate_plan.create").count() == 2

    weather = rate_plan_in_force(product=ApiProduct.objects.get(name="weather-api"))
    assert weather is not None
    assert (weather.display_name, weather.currency, weather.state) == (
        "Standard",
        "USD",
        "PUBLISHED",
    )
    assert (weather.setup_fee, weather.recurring_fee) == (usd("10.00"), usd("5.00"))
    assert weather.fee_frequency_months == 1
    assert weather.consumption_pricing_type == "BANDED"
    # Calls 1-100 free, 101-200 at $0.015, from the 201st $0.01.
    assert weather.consumption_rates == [
        {"start": 0, "end": 100, "fee_nanos": 0},
        {"start": 100, "end": 200, "fee_nanos": usd("0.015").nanos},
        {"start": 200, "end": 0, "fee_nanos": usd("0.01").nanos},
    ]
    assert weather.revenue_share_type == "FIXED"
    assert weather.revenue_share_rates == [{"start": 0, "end": 0, "share_percentage": "15"}]

    maps_product = ApiProduct.objects.get(name="maps-api")
    assert (maps_product.display_name, maps_product.quota) == ("Maps API", 1000)
    assert (maps_product.quota_interval, maps_product.quota_time_unit) == (1, "day")
    maps = rate_plan_in_force(product=maps_product)
    assert maps is not None
    assert (maps.display_name, maps.state) == ("Free", "PUBLISHED")
    assert (maps.setup_fee, maps.recurring_fee) == (usd("0"), usd("0"))
    assert maps.consumption_pricing_type == ""


def test_seed_demo_keeps_what_an_admin_changed_since():
    call_command("seed_demo")
    product = ApiProduct.objects.get(name="maps-api")
    product.display_name = "Maps (renamed by an admin)"
    product.save(update_fields=["display_name"])
    RatePlan.objects.filter(product=product).update(display_name="Gratis")

    call_command("seed_demo")

    product.refresh_from_db()
    assert product.display_name == "Maps (renamed by an admin)"
    assert list(
        RatePlan.objects.filter(product=product).values_list("display_name", flat=True)
    ) == ["Gratis"]


def test_a_demo_developer_can_buy_the_seeded_weather_api():
    call_command("seed_demo")
    developer = User.objects.get(email="developer@example.com")  # postpaid: the fees accrue
    bought = subscription_purchase(
        account=developer.billing_account,
        product=ApiProduct.objects.get(name="weather-api"),
        actor=Actor.system(),
    )
    assert bought.subscription.rate_plan.display_name == "Standard"
    assert bought.quote.setup_fee == usd("10.00")
    assert 0 < bought.quote.first_fee.nanos <= usd("5.00").nanos  # prorated by days
