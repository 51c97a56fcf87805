"""/account/usage/: calls and charges per product and day, with a chart, and the calls behind
each usage charge; the same for admins with "View any prepaid balance"."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.catalog.rates import Band
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import LedgerEntry, RatePlan
from billing.subscriptions.services import subscription_purchase
from billing.usage.ingest import usage_batch_record
from tests.billing.usage.helpers import app_with_key, report
from tests.conftest import usd
from tests.factories import ApiProductFactory, published_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def used(prepaid_account):
    """The developer bought Weather API at $0.015 a call and made 120 calls in 3 events."""
    product = ApiProductFactory(name="weather-api", display_name="Weather API")
    published_plan(
        product,
        consumption_pricing_type=RatePlan.ConsumptionPricing.FIXED_PER_UNIT,
        bands=[Band(0, 0, 15_000_000)],
    )
    wallet_credit(
        account=prepaid_account, money=usd("50"), transaction_id="t", actor=Actor.system()
    )
    subscription_purchase(account=prepaid_account, product=product, actor=Actor.system())
    _, _, raw = app_with_key(prepaid_account, product)
    results = usage_batch_record(
        events=[report(f"e{n}", raw, "weather-api", units=40) for n in range(3)],
        actor=Actor.system(),
    )
    assert [r.status for r in results] == ["RATED"] * 3
    return LedgerEntry.objects.get(kind="USAGE")


def test_the_developer_sees_calls_and_charges_of_the_month(client, developer, used):
    client.force_login(developer)
    page = client.get(reverse("my_usage")).content.decode()
    assert "Usage in " + f"{timezone.now():%B %Y}" in page
    assert "<strong>120</strong> calls charged <strong>$1.80</strong>" in page
    assert "<svg" in page and "Weather API" in page
    balance = client.get(reverse("my_balance") + "?kind=USAGE").content.decode()
    assert reverse("my_usage_entry", args=[used.pk]) in balance


def test_the_calls_behind_a_usage_charge(client, developer, used):
    client.force_login(developer)
    page = client.get(reverse("my_usage_entry", args=[used.pk])).content.decode()
    assert page.count('data-label="Event id"') == 3 and "e0" in page and "$0.60" in page


def test_another_month_and_a_malformed_one(client, developer, used):
    client.force_login(developer)
    assert (
        "No calls were reported in January 2020"
        in client.get(reverse("my_usage") + "?month=2020-01").content.decode()
    )
    assert client.get(reverse("my_usage") + "?month=%00x").status_code == 200


def test_who_may_see_it(
    client, developer, other_developer, admin_without_permission, portal_admin, used
):
    mine = reverse("my_usage_entry", args=[used.pk])
    client.force_login(other_developer)
    assert client.get(mine).status_code == 404  # another developer's charge
    assert "No calls" in client.get(reverse("my_usage")).content.decode()
    people = reverse("people_usage", args=[developer.pk])
    entry = reverse("people_usage_entry", args=[developer.pk, used.pk])
    client.force_login(admin_without_permission)
    assert client.get(people).status_code == 403 and client.get(entry).status_code == 403
    assert client.get(reverse("my_usage")).status_code == 404
    client.force_login(portal_admin)
    assert "$1.80" in client.get(people).content.decode()
    assert client.get(entry).status_code == 200
    client.logout()
    for url in (reverse("my_usage"), mine, people):
        assert client.get(url)["Location"].startswith(reverse("account_login"))


def test_the_page_runs_the_same_queries_for_many_events(client, developer, prepaid_account, used):
    client.force_login(developer)
    client.get(reverse("my_usage"))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("my_usage"))
    maps = ApiProductFactory(name="maps-api")
    published_plan(maps)
    subscription_purchase(account=prepaid_account, product=maps, actor=Actor.system())
    _, _, raw = app_with_key(prepaid_account, maps, name="Maps app")
    usage_batch_record(
        events=[report(f"m{n}", raw, "maps-api") for n in range(100)], actor=Actor.system()
    )
    with CaptureQueriesContext(connection) as many:
        page = client.get(reverse("my_usage")).content.decode()
    assert "<strong>220</strong> calls" in page
    assert len(many.captured_queries) == len(few.captured_queries)


def test_the_home_page_shows_this_months_usage(client, developer, used):
    client.force_login(developer)
    assert "120 calls, $1.80" in client.get(reverse("home")).content.decode()
