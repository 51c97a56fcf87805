"""The top-up status page tells a screen-reader user when the payment is confirmed, once: the
status sits in one live region, and polls that find nothing new leave the page alone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from billing.models import TopUp
from tests.browser.signing_in import sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_the_status_is_announced_once_when_the_payment_is_confirmed(
    browser, live_server, settings, prepaid_developer
):
    settings.PORTAL_BASE_URL = live_server.url
    context = browser.new_context(viewport={"width": 390, "height": 844})
    payer = context.new_page()
    sign_in(payer, live_server.url, prepaid_developer.email)
    payer.goto(f"{live_server.url}/account/balance/add-credit/USD/")
    payer.fill("input[name=amount]", "10")
    payer.click("main button:has-text('Continue to payment')")
    payer.wait_for_url("**/test-payment/")

    top_up = TopUp.objects.get()
    status = context.new_page()
    status.goto(f"{live_server.url}/account/balance/top-ups/{top_up.public_id}/")
    live = status.locator("[aria-live=polite]")
    expect(live).to_contain_text("Pending: waiting for the payment of $10.00")
    # Mark the shown status: a poll that swaps in the same text again would drop the mark.
    status.locator("#top-up-status").evaluate("el => el.dataset.shown = 'first'")
    status.wait_for_timeout(4500)  # two polls
    expect(status.locator("#top-up-status")).to_have_attribute("data-shown", "first")

    payer.click("main button:has-text('Pay $10.00')")
    expect(live).to_contain_text("Done: $10.00 was added to your balance.", timeout=15000)
    expect(status.locator("#top-up-status")).not_to_have_attribute("data-shown", "first")
