"""The whole loop in Chromium: a developer buys a plan, creates an app and copies its key; a
script plays the gateway with that key (limits check, then usage); the usage page and the
balance show the charges."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from accounts.services import api_token_create
from billing.catalog.rates import Band
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import RatePlan
from tests.browser.signing_in import signed_in_page
from tests.conftest import usd
from tests.factories import ApiProductFactory, UserFactory, published_plan

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def gateway_call(base: str, token: str, path: str, body: dict) -> dict:
    """What a gateway sends: JSON with its bearer token, over HTTP to the portal."""
    request = urllib.request.Request(  # noqa: S310 - the live test server on 127.0.0.1
        f"{base}/v1/organizations/demo-org/{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())


def test_buy_create_an_app_call_through_a_gateway_and_see_the_charges(
    browser, live_server, prepaid_developer
):
    published_plan(
        ApiProductFactory(name="weather-api", display_name="Weather API"),
        setup="1",
        consumption_pricing_type=RatePlan.ConsumptionPricing.FIXED_PER_UNIT,
        bands=[Band(0, 0, 10_000_000)],  # $0.01 a call
    )
    wallet_credit(
        account=prepaid_developer.billing_account,
        money=usd("20"),
        transaction_id="opening",
        actor=Actor.system(),
    )
    gateway = UserFactory(email="gateway@example.com")
    gateway.user_permissions.add(Permission.objects.get(codename="report_usage"))
    _, token = api_token_create(user=gateway, name="gateway")
    page = signed_in_page(browser, live_server.url, prepaid_developer.email, width=1280)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    nav = page.get_by_role("navigation", name="Main")

    nav.get_by_role("link", name="Buy APIs").click()
    page.get_by_role("link", name="Purchase Weather API").click()
    page.get_by_role("button", name="Confirm purchase").click()
    page.wait_for_url("**/account/plans/")

    nav.get_by_role("link", name="Apps").click()
    page.fill("input[name=name]", "Forecast widget")
    page.check("input[value=weather-api]")
    page.click("text=Create app")
    page.click("button[data-copy-target=new-key-value]")
    page.wait_for_selector("text=The key is copied to your clipboard.")
    key = page.evaluate("navigator.clipboard.readText()")

    check = gateway_call(
        live_server.url, token, "limitsCheck", {"consumerKey": key, "apiproduct": "weather-api"}
    )
    assert check["allowed"] is True and check["reason"] == "OK"
    assert check["balance"] == {"currencyCode": "USD", "units": "19"}  # after the $1 setup fee
    now_ms = str(int(time.time() * 1000))
    events = [
        {"id": f"call-{n}", "consumerKey": key, "apiproduct": "weather-api", "time": now_ms,
         "units": 10}
        for n in range(5)
    ]  # fmt: skip
    results = gateway_call(live_server.url, token, "usage:batch", {"events": events})["results"]
    assert [r["status"] for r in results] == ["RATED"] * 5
    again = gateway_call(live_server.url, token, "usage:batch", {"events": events[:1]})
    assert again["results"][0]["status"] == "DUPLICATE"

    page.goto(live_server.url + "/account/usage/")
    expect(page.get_by_test_id("usage-totals")).to_contain_text("50 calls charged $0.50")
    expect(page.get_by_test_id("usage-table")).to_contain_text("Weather API")
    page.goto(live_server.url + "/account/balance/?kind=USAGE")
    history = page.locator("#history")
    expect(history).to_contain_text("-$0.50")
    history.get_by_role("link").first.click()
    expect(page.get_by_test_id("usage-events")).to_contain_text("call-4")
    page.goto(live_server.url + "/account/balance/")
    expect(page.locator("main")).to_contain_text("$18.50")
