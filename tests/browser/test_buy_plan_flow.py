"""Buying a plan in Chromium, on a phone: a prepaid developer short of money is told the
shortfall, adds it through Add credit and the offline test payment, comes back and buys; the
plan is under Purchased plans and its fee in the history. Then every plan page, with names
nobody would choose, stays inside the window at both widths, with a title of its own."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from billing.billing_type.services import billing_type_set
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import BillingTypeChange, OrganizationSettings, Subscription
from billing.subscriptions.services import subscription_purchase
from tests.browser.signing_in import signed_in_page
from tests.conftest import usd
from tests.factories import AdminFactory, ApiProductFactory, DeveloperFactory, published_plan

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SIDEWAYS = "() => document.documentElement.scrollWidth - window.innerWidth"
# Inputs a user can fill that have neither a <label> nor an aria-label(ledby).
UNNAMED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(el => !el.labels.length && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.name)"""


def refusals(page) -> list[str]:
    """What the Content-Security-Policy refused on `page` (each refusal is a console error)."""
    seen: list[str] = []
    page.on(
        "console",
        lambda message: (
            seen.append(message.text)
            if "Content Security Policy" in message.text or "Refused to" in message.text
            else None
        ),
    )
    return seen


def test_short_of_money_add_credit_then_buy(browser, live_server, settings, prepaid_developer):
    settings.PORTAL_BASE_URL = live_server.url
    OrganizationSettings.objects.update(purchase_terms="Fees already paid are not refunded.")
    published_plan(
        ApiProductFactory(name="weather-api", display_name="Weather API"),
        display_name="Standard",
        setup="10",
    )
    wallet_credit(
        account=prepaid_developer.billing_account,
        money=usd("5"),
        transaction_id="first-credit",
        actor=Actor.system(),
    )
    page = signed_in_page(browser, live_server.url, prepaid_developer.email, width=390)
    refused = refusals(page)
    nav = page.get_by_role("navigation", name="Main")
    sideways = {}

    nav.get_by_role("link", name="Buy APIs").click()
    page.wait_for_url("**/plans/")
    sideways["plans"] = page.evaluate(SIDEWAYS)
    page.get_by_role("link", name="Purchase Weather API").click()
    page.wait_for_url("**/plans/weather-api/purchase/")
    refusal = page.get_by_test_id("refusal")
    expect(refusal).to_contain_text(
        "You have insufficient funds to purchase this plan. Add at least $5.00 to your balance."
    )
    expect(page.get_by_role("button", name="Confirm purchase")).to_have_count(0)
    sideways["purchase, short"] = page.evaluate(SIDEWAYS)

    refusal.get_by_role("link", name="Add credit").click()
    page.wait_for_url("**/account/balance/add-credit/USD/?amount=5")
    assert page.input_value("input[name=amount]") == "5"
    page.click("main button:has-text('Continue to payment')")
    page.wait_for_url("**/test-payment/")
    page.click("main button:has-text('Pay $5.00')")
    expect(page.locator("#top-up-status")).to_contain_text(
        "Done: $5.00 was added to your balance.", timeout=15000
    )

    nav.get_by_role("link", name="Buy APIs").click()
    page.get_by_role("link", name="Purchase Weather API").click()
    page.wait_for_url("**/plans/weather-api/purchase/")
    expect(page.get_by_test_id("quote-total")).to_have_text("$10.00")
    expect(page.get_by_test_id("balance-now")).to_have_text("$10.00")
    expect(page.get_by_test_id("balance-after")).to_have_text("$0.00")
    sideways["purchase"] = page.evaluate(SIDEWAYS)
    page.get_by_role("button", name="Confirm purchase").click()
    expect(page.get_by_test_id("error-summary")).to_contain_text(
        "Accept the purchase terms to buy this plan."
    )
    assert not Subscription.objects.exists()
    page.get_by_label("I accept the purchase terms above").check()
    page.get_by_role("button", name="Confirm purchase").click()

    page.wait_for_url("**/account/plans/")
    expect(page.locator(".messages")).to_contain_text(
        "You bought Weather API (Standard plan). Charged $10.00 to your balance: setup fee $10.00."
    )
    expect(page.get_by_test_id("open-plans")).to_contain_text("Weather API")
    expect(page.get_by_test_id("open-plans")).to_contain_text("Active")
    sideways["purchased plans"] = page.evaluate(SIDEWAYS)
    page.goto(f"{live_server.url}/account/balance/")
    expect(page.locator("#history")).to_contain_text("Setup fee: Weather API, Standard plan")
    expect(page.locator("#history")).to_contain_text("-$10.00")
    assert Subscription.objects.count() == 1
    assert {name: px for name, px in sideways.items() if px > 0} == {}
    assert refused == []


# 200 characters without a space: the longest product and plan names the catalog takes.
LONG_NAME = ("Wolfeschlegelsteinhausenbergerdorff" * 6)[:200]


@pytest.mark.parametrize("width", [390, 1280])
def test_plan_pages_with_long_names_stay_in_the_window(browser, live_server, width):
    base = live_server.url
    developer = DeveloperFactory(
        email="priya@example.com", first_name=LONG_NAME[:150], last_name=LONG_NAME[:150]
    )
    AdminFactory(email="ada@example.com", portal_admin=True)
    OrganizationSettings.objects.update(purchase_terms=LONG_NAME + "\n" + LONG_NAME)
    bought = published_plan(
        ApiProductFactory(name="long-one", display_name=LONG_NAME, description=LONG_NAME),
        display_name=LONG_NAME,
        description=LONG_NAME,
        recurring="5",
    )
    published_plan(
        ApiProductFactory(name="long-two", display_name=LONG_NAME[:199] + "2"),
        display_name=LONG_NAME,
        setup="10",
    )
    billing_type_set(
        account=developer.billing_account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    wallet_credit(
        account=developer.billing_account,
        money=usd("6"),
        transaction_id="credit",
        actor=Actor.system(),
    )
    subscription = subscription_purchase(
        account=developer.billing_account, product=bought.product, actor=Actor.system()
    ).subscription
    pages = {
        "priya@example.com": [
            "/",
            "/account/",
            "/plans/",
            "/plans/long-two/purchase/",
            "/plans/long-one/purchase/",
            "/account/plans/",
            f"/account/plans/{subscription.public_id}/cancel/",
        ],
        "ada@example.com": [
            "/plans/",
            f"/people/{developer.pk}/account/plans/",
            f"/people/{developer.pk}/account/plans/{subscription.public_id}/cancel/",
        ],
    }
    wide, titles, unnamed = [], {}, {}
    for email, paths in pages.items():
        page = signed_in_page(browser, base, email, width)
        for path in paths:
            response = page.goto(base + path)
            assert response.status == 200, path
            if page.evaluate(SIDEWAYS) > 0:
                wide.append(path)
            titles[(email, path)] = page.title()
            unnamed[path] = page.evaluate(UNNAMED)
            if path == "/plans/long-two/purchase/":  # prepaid, $10 short: the refusal shows
                expect(page.get_by_test_id("refusal")).to_contain_text("Add at least")
    assert wide == []
    assert {path: names for path, names in unnamed.items() if names} == {}
    # Each page the developer passes through while buying has a title of its own.
    own = [t for (email, path), t in titles.items() if email == "priya@example.com"]
    assert len(set(own)) == len(own), own
    assert titles[("priya@example.com", "/plans/")] == "Buy APIs · Developer portal"
    assert titles[("priya@example.com", "/account/plans/")] == "Purchased plans · Developer portal"
