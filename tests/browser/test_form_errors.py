"""Form errors and hints reach a screen reader with their field: each input's accessible
description (what is read when it gets focus) holds its hint and its error."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.signing_in import sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def broken_references(page) -> list[str]:
    """aria-describedby ids that name no element on the page."""
    return page.evaluate(
        """() => [...document.querySelectorAll('[aria-describedby]')].flatMap(el =>
             el.getAttribute('aria-describedby').split(/\\s+/)
               .filter(id => !document.getElementById(id)))"""
    )


def test_signup_errors_and_hints_are_read_with_their_fields(browser, live_server):
    page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    page.goto(f"{live_server.url}/accounts/signup/")
    page.evaluate("document.querySelector('main form').noValidate = true")  # the server's say
    page.fill("input[name=email]", "not-an-address")
    page.fill("input[name=password1]", "1234")
    page.click("main button[type=submit]")

    expect(page.locator("#id_email")).to_have_accessible_description("Enter a valid email address.")
    password = page.locator("#id_password1")
    expect(password).to_have_accessible_description(re.compile(r"at least 8 characters"))
    expect(password).to_have_accessible_description(re.compile(r"This password is too short"))
    expect(page.locator("#id_first_name")).to_have_accessible_description("This field is required.")
    assert broken_references(page) == []


def test_an_add_credit_error_is_read_with_the_amount(browser, live_server, prepaid_developer):
    page = browser.new_context().new_page()
    sign_in(page, live_server.url, prepaid_developer.email)
    page.goto(f"{live_server.url}/account/balance/add-credit/USD/")
    page.fill("input[name=amount]", "0.01")
    page.click("main button:has-text('Continue to payment')")

    amount = page.get_by_label("Amount to be added to your account balance")
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(amount).to_have_accessible_description(re.compile(r"\$5\.00"))
    assert broken_references(page) == []


def test_the_problems_are_listed_first_and_each_leads_to_its_field(browser, live_server):
    page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    page.goto(f"{live_server.url}/accounts/signup/")
    page.evaluate("document.querySelector('main form').noValidate = true")
    page.fill("input[name=email]", "not-an-address")
    page.fill("input[name=first_name]", "Priya")
    page.fill("input[name=password1]", "a-long-enough-passphrase")
    page.fill("input[name=password2]", "a-long-enough-passphrase")
    page.click("main button[type=submit]")

    summary = page.get_by_test_id("error-summary")
    expect(summary).to_have_attribute("role", "alert")
    expect(summary.locator("li")).to_have_text(
        ["Email: Enter a valid email address.", "Last name: This field is required."]
    )
    # The summary comes before the first field, so it is met first, by eye and by keyboard.
    assert summary.evaluate(
        "el => !!(el.compareDocumentPosition(document.querySelector('#id_email'))"
        " & Node.DOCUMENT_POSITION_FOLLOWING)"
    )
    summary.get_by_role("link", name="Last name: This field is required.").click()
    expect(page.locator("#id_last_name")).to_be_focused()
    # One alert for the whole form, not one per error.
    expect(page.locator("main [role=alert]")).to_have_count(1)
