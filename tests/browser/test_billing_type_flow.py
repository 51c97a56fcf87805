"""The whole billing-type story in Chromium, as a developer and an admin would click it."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from tests.factories import PASSWORD, AdminFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def log_in(page, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_signup_default_then_admin_sets_postpaid(browser, live_server):
    base = live_server.url
    developer = browser.new_context().new_page()

    # A developer signs up and confirms the email address.
    developer.goto(f"{base}/accounts/signup/")
    developer.fill("input[name=email]", "grace@example.com")
    developer.fill("input[name=first_name]", "Grace")
    developer.fill("input[name=last_name]", "Hopper")
    developer.fill("input[name=password1]", "compilers-are-fun-1952")
    developer.fill("input[name=password2]", "compilers-are-fun-1952")
    developer.click("button[type=submit]")
    developer.wait_for_url(re.compile(r"/accounts/confirm-email/$"))
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[-1].body).group(0)
    developer.goto(link)
    developer.click("button[type=submit]")
    developer.goto(f"{base}/account/")
    assert (
        developer.get_by_test_id("billing-type").inner_text()
        == "Not specified (defaults to Postpaid)"
    )

    # An admin with the permissions makes Prepaid the organisation default.
    AdminFactory(email="ada@example.com", portal_admin=True)
    admin = browser.new_context().new_page()
    log_in(admin, base, "ada@example.com", PASSWORD)
    admin.click("text=Monetization settings")
    admin.check("input[name=default_billing_type][value=PREPAID]")
    admin.click("text=Save configuration")
    assert "Make Prepaid the default billing type?" in admin.inner_text("main")
    admin.click("text=Save changes")
    assert "1 developer without a billing type of their own now follows it" in admin.inner_text(
        ".messages"
    )

    developer.reload()
    assert (
        developer.get_by_test_id("billing-type").inner_text()
        == "Not specified (defaults to Prepaid)"
    )

    # The admin finds her in People and sets her to Postpaid through the confirmation page.
    admin.click("nav >> text=People")
    admin.fill("#people-search", "hopper")
    admin.wait_for_selector("#people >> text=1 developer matching")
    admin.click("#people >> text=Grace Hopper")
    admin.click(".tabs >> text=Billing type")
    admin.check("input[name=billing_type][value=POSTPAID]")
    admin.click("text=Continue")
    assert "Set the billing type to Postpaid?" in admin.inner_text("main")
    assert "reported as a credit transaction" in admin.inner_text("main")
    admin.click("text=Save changes")
    assert "is now Postpaid" in admin.inner_text(".messages")
    assert "Organisation default" in admin.inner_text("table")

    developer.reload()
    assert developer.get_by_test_id("billing-type").inner_text() == "Postpaid"
