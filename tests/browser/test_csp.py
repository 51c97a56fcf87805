"""Under the Content-Security-Policy the pages work as before, htmx included, and the browser
refuses nothing on them (every refusal is a console error)."""

from __future__ import annotations

import pytest

from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.money import money_parse
from tests.browser.signing_in import signed_in_page
from tests.factories import AdminFactory, DeveloperFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def refusals(page) -> list[str]:
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


def test_pages_and_htmx_work_and_nothing_is_refused(browser, live_server):
    developer = DeveloperFactory(email="priya@example.com", first_name="Priya")
    wallet_credit(
        account=developer.billing_account,
        money=money_parse("5", "USD"),
        transaction_id="t1",
        actor=Actor.system(),
    )
    AdminFactory(email="ada@example.com", portal_admin=True)

    page = signed_in_page(browser, live_server.url, "priya@example.com", width=1280)
    refused = refusals(page)
    for path in ("/", "/account/", "/account/balance/", "/account/balance/add-credit/USD/"):
        page.goto(live_server.url + path)
    page.goto(f"{live_server.url}/account/balance/")
    page.select_option("#id_kind", "TOP_UP")  # htmx swaps the history in
    page.wait_for_url("**/account/balance/?kind=TOP_UP")
    assert "Top-up" in page.inner_text("#history")

    admin = signed_in_page(browser, live_server.url, "ada@example.com", width=1280)
    refused_admin = refusals(admin)
    admin.fill("#people-search", "priya")  # htmx search
    admin.wait_for_url("**/people/?q=priya**")
    assert "priya@example.com" in admin.inner_text("#people")
    for path in (
        "/admin/config/monetization/settings/",
        "/admin/",
        "/admin/billing/auditlogentry/",
    ):
        admin.goto(live_server.url + path)

    assert refused == [] and refused_admin == []
