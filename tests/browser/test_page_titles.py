"""Each page a developer passes through while adding credit has its own title: the title is
what a screen reader announces first and what tabs and history list."""

from __future__ import annotations

import pytest

from billing.models import TopUp
from tests.browser.signing_in import sign_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_the_add_credit_pages_have_titles_of_their_own(
    browser, live_server, settings, prepaid_developer
):
    settings.PORTAL_BASE_URL = live_server.url
    page = browser.new_context().new_page()
    sign_in(page, live_server.url, prepaid_developer.email)
    titles = {"account": page.title()}
    page.goto(f"{live_server.url}/account/balance/")
    titles["balance"] = page.title()
    page.goto(f"{live_server.url}/account/balance/add-credit/USD/")
    titles["add credit"] = page.title()
    page.fill("input[name=amount]", "10")
    page.click("main button:has-text('Continue to payment')")
    page.wait_for_url("**/test-payment/")
    titles["payment"] = page.title()
    top_up = TopUp.objects.get()
    page.goto(f"{live_server.url}/account/balance/top-ups/{top_up.public_id}/")
    titles["status"] = page.title()
    page.goto(f"{live_server.url}/account/balance/top-ups/{top_up.public_id}/cancel/")
    titles["cancel"] = page.title()

    assert titles["add credit"] == "Add credit in USD · Developer portal"
    assert titles["status"] == "Top-up status · Developer portal"
    assert len(set(titles.values())) == len(titles), titles
