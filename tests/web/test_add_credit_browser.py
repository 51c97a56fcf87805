"""Add credit in Chromium, offline mode: the developer pays USD 20 on the test-payment page, sees
the top-up pending, then done with the new balance, without reloading (htmx polls)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

from tests.factories import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def log_in(page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/accounts/login/)"))


def shoot(page, name: str, viewport: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"add-credit-{name}-{viewport}.png"), full_page=True)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_developer_adds_20_dollars_and_sees_pending_then_done(
    browser, live_server, viewport, prepaid_developer
):
    developer = prepaid_developer
    context = browser.new_context(viewport=VIEWPORTS[viewport])
    page = context.new_page()
    base = live_server.url
    log_in(page, base, developer.email)

    page.goto(f"{base}/account/balance/")
    page.click("tr[data-currency=USD] >> text=Add credit")
    page.wait_for_url(f"{base}/account/balance/add-credit/USD/")
    assert page.get_by_label("Amount to be added to your account balance").is_visible()
    page.fill("input[name=amount]", "20")
    shoot(page, "form", viewport)
    page.click("text=Continue to payment")

    page.wait_for_url(re.compile(r"/test-payment/$"))
    assert "TEST PAYMENT" in page.inner_text(".badge")
    shoot(page, "test-payment", viewport)
    page.click("button:has-text('Pay $20.00')")

    page.wait_for_url(re.compile(r"/account/balance/top-ups/[0-9a-f-]+/$"))
    status = page.locator("#top-up-status")
    assert status.get_attribute("data-state") == "PENDING"
    assert "Pending" in status.inner_text()
    shoot(page, "status-pending", viewport)
    # A marker that a reload would wipe out: the page must update in place.
    page.evaluate("window.stillTheSamePage = true")

    page.wait_for_selector("#top-up-status[data-state=SUCCEEDED]", timeout=10_000)
    assert "Done" in status.inner_text()
    assert page.get_by_test_id("new-balance").inner_text() == "$20.00"
    assert page.evaluate("window.stillTheSamePage") is True
    shoot(page, "status-done", viewport)

    page.goto(f"{base}/account/balance/")
    assert "$20.00" in page.inner_text("tr[data-currency=USD]")
    context.close()
