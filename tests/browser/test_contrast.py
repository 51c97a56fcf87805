"""Warnings and pending states are readable: their text has at least the 4.5:1 contrast that
WCAG asks of normal text against its own tinted background."""

from __future__ import annotations

import pytest

from tests.browser.signing_in import sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# The WCAG contrast ratio of an element's text colour against its background colour.
CONTRAST = """el => {
  const rgb = c => c.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
  const lum = c => {
    const [r, g, b] = rgb(c).map(v => v / 255)
      .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const style = getComputedStyle(el);
  const [a, b] = [lum(style.color), lum(style.backgroundColor)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def test_pending_and_warning_text_has_enough_contrast(
    browser, live_server, settings, prepaid_developer
):
    settings.PORTAL_BASE_URL = live_server.url
    page = browser.new_context().new_page()
    sign_in(page, live_server.url, prepaid_developer.email)

    page.goto(f"{live_server.url}/account/balance/add-credit/USD/")
    page.fill("input[name=amount]", "10")
    page.click("main button:has-text('Continue to payment')")
    page.wait_for_url("**/test-payment/")
    assert page.locator(".badge.warn").evaluate(CONTRAST) >= 4.5  # "TEST PAYMENT" badge

    page.goto(f"{live_server.url}/account/balance/add-credit/USD/")
    assert page.get_by_test_id("open-top-up").evaluate(CONTRAST) >= 4.5  # not paid yet
