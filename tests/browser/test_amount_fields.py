"""An amount box in a browser: the currency symbol before it leaves its name and its error as
they were (read with the field), and a misread amount is refused with what it could mean."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from billing.models import TopUp
from tests.browser.signing_in import sign_in, signed_in_page
from tests.factories import AdminFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

TWENTY_FIFTY = "“20,50” is not an amount: did you mean 20.50 or 2,050?"
# aria-describedby ids that name no element on the page.
BROKEN_REFERENCES = """() => [...document.querySelectorAll('[aria-describedby]')].flatMap(el =>
  el.getAttribute('aria-describedby').split(/\\s+/).filter(id => !document.getElementById(id)))"""


def test_add_credit_refuses_20_50_with_the_symbol_beside_a_named_box(
    browser, live_server, prepaid_developer
):
    page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    sign_in(page, live_server.url, prepaid_developer.email)
    page.goto(f"{live_server.url}/account/balance/add-credit/USD/")

    amount = page.get_by_label("Amount to be added to your account balance")
    expect(amount).to_have_attribute("inputmode", "decimal")
    prefix = page.locator(".amount-field:has(#id_amount) .amount-prefix")
    expect(prefix).to_have_text("$")
    expect(prefix).to_be_visible()
    amount.fill("20,50")
    page.click("main button:has-text('Continue to payment')")

    expect(amount).to_have_attribute("aria-invalid", "true")
    # The symbol is not read into the box's name (the page says USD): only the label is.
    expect(amount).to_have_accessible_name("Amount to be added to your account balance:")
    expect(amount).to_have_accessible_description(TWENTY_FIFTY)
    expect(page.get_by_test_id("error-summary")).to_contain_text(TWENTY_FIFTY)
    assert page.evaluate(BROKEN_REFERENCES) == []
    assert not TopUp.objects.exists()


def test_the_adjust_amount_keeps_its_hint_and_reads_its_error(browser, live_server, developer):
    AdminFactory(email="ada@example.com", portal_admin=True)
    page = signed_in_page(browser, live_server.url, "ada@example.com", width=1280)
    page.goto(f"{live_server.url}/people/{developer.pk}/account/balance/")

    page.get_by_label("Increase the balance").check()
    amount = page.get_by_label("Amount:", exact=True)
    expect(amount).to_have_attribute("inputmode", "decimal")
    expect(page.locator(".amount-field:has(#id_amount) .amount-prefix")).to_have_text("$")
    amount.fill("0.001")
    page.get_by_label("Reason").fill("goodwill")
    page.click("main button:has-text('Review adjustment')")

    amount = page.get_by_label("Amount:", exact=True)
    expect(amount).to_have_accessible_description(
        re.compile(r"For example 12\.50.*USD amounts take at most 2 decimal places\.")
    )
    assert page.evaluate(BROKEN_REFERENCES) == []
