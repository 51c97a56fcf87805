"""Every input on the portal's pages has a name a screen reader can read out, for each role."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from billing.billing_type.services import billing_type_set
from billing.models import BillingTypeChange
from tests.browser.signing_in import signed_in_page
from tests.factories import AdminFactory, DeveloperFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# Inputs a user can fill that have neither a <label> nor an aria-label(ledby).
UNNAMED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(el => !el.labels.length && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.name)"""


def test_every_input_and_column_has_a_name(browser, live_server):
    base = live_server.url
    developer = DeveloperFactory(email="priya@example.com")
    billing_type_set(
        account=developer.billing_account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    AdminFactory(email="ada@example.com", portal_admin=True)

    anonymous = browser.new_context().new_page()
    for path in ("/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"):
        anonymous.goto(base + path)
        assert anonymous.evaluate(UNNAMED) == [], path

    page = signed_in_page(browser, base, "priya@example.com")
    for path in ("/account/", "/account/balance/", "/account/balance/add-credit/USD/"):
        page.goto(base + path)
        assert page.evaluate(UNNAMED) == [], path
    # A table column without a header is read out as nothing: the Add credit column's says so.
    page.goto(base + "/account/balance/")
    headers = page.get_by_test_id("wallets").locator("th").all_text_contents()
    assert headers == ["Currency", "Balance", "Last credit", "Add credit"]

    admin = signed_in_page(browser, base, "ada@example.com")
    for path in (
        "/people/",
        f"/people/{developer.pk}/account/balance/",
        f"/people/{developer.pk}/account/billing-type/",
        "/admin/config/monetization/settings/",
    ):
        admin.goto(base + path)
        assert admin.evaluate(UNNAMED) == [], path


def test_each_add_credit_limit_is_named_for_its_currency(browser, live_server):
    AdminFactory(email="ada@example.com", portal_admin=True)
    admin = signed_in_page(browser, live_server.url, "ada@example.com")
    admin.goto(f"{live_server.url}/admin/config/monetization/settings/")
    admin.get_by_label("New currency", exact=True).fill("EUR")
    admin.get_by_label("New currency minimum").fill("5")
    admin.get_by_label("New currency maximum").fill("50")
    admin.get_by_label("New currency default").fill("10")
    admin.click("text=Save Add credit settings")

    expect(admin.get_by_label("EUR maximum")).to_have_value("50")
    expect(admin.get_by_label("Remove EUR")).not_to_be_checked()


def test_sign_in_and_sign_up_tell_the_browser_what_to_fill_in(browser, live_server):
    """autocomplete lets browsers and password managers fill the forms (WCAG 1.3.5)."""
    page = browser.new_context().new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    expect(page.get_by_label("Email")).to_have_attribute("autocomplete", "email")
    expect(page.get_by_label("Password")).to_have_attribute("autocomplete", "current-password")

    page.goto(f"{live_server.url}/accounts/signup/")
    expected = {
        "email": "email",
        "first_name": "given-name",
        "last_name": "family-name",
        "password1": "new-password",
        "password2": "new-password",
    }
    for name, token in expected.items():
        expect(page.locator(f"main input[name={name}]")).to_have_attribute("autocomplete", token)
