"""Pages that htmx updates in place keep working with the browser's Back button: the address
htmx pushes must give the whole page again, not the fragment htmx fetched for it."""

from __future__ import annotations

import pytest

from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.money import money_parse
from tests.browser.signing_in import signed_in_page, wait_for
from tests.factories import AdminFactory, DeveloperFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_back_to_a_people_search_shows_the_whole_page(browser, live_server):
    DeveloperFactory(email="priya@example.com", first_name="Priya", last_name="Prepaid")
    AdminFactory(email="ada@example.com", portal_admin=True)
    page = signed_in_page(browser, live_server.url, "ada@example.com", width=390)
    page.goto(f"{live_server.url}/people/")

    page.fill("#people-search", "priya")
    page.wait_for_url("**/people/?q=priya**")
    page.click("#people a:has-text('Priya Prepaid')")
    page.wait_for_url("**/people/*/account/")
    page.go_back()
    page.wait_for_url("**/people/?q=priya**")

    # Without Vary: HX-Request the browser showed its cached fragment: a bare table.
    assert page.locator(".topbar").count() == 1
    assert page.input_value("#people-search") == "priya"
    assert "Priya Prepaid" in page.inner_text("#people")


def test_back_to_a_page_of_transactions_shows_the_whole_page(browser, live_server):
    developer = DeveloperFactory(email="priya@example.com")
    for n in range(25):  # two pages of history
        wallet_credit(
            account=developer.billing_account,
            money=money_parse("1.00", "USD"),
            transaction_id=f"t{n}",
            actor=Actor.system(),
        )
    page = signed_in_page(browser, live_server.url, "priya@example.com", width=390)
    page.goto(f"{live_server.url}/account/balance/")

    page.click(".pager a:has-text('Older')")
    page.wait_for_url("**/account/balance/?kind=&page=2")
    page.click(".tabs a:has-text('My account')")
    page.wait_for_url(f"{live_server.url}/account/")
    page.go_back()
    page.wait_for_url("**/account/balance/?kind=&page=2")

    assert page.locator(".topbar").count() == 1
    assert "Page 2 of 2" in page.inner_text("#history")


def test_back_then_forward_keeps_the_transaction_filter_and_its_list_together(browser, live_server):
    """After Back then Forward the list showed one kind of entries under "All kinds": htmx
    restored its snapshot of the page, in which the filter's choice was not written down."""
    developer = DeveloperFactory(email="priya@example.com")
    wallet_credit(
        account=developer.billing_account,
        money=money_parse("5.00", "USD"),
        transaction_id="t1",
        actor=Actor.system(),
        kind="ADJUSTMENT",
    )
    page = signed_in_page(browser, live_server.url, "priya@example.com", width=1280)
    page.goto(f"{live_server.url}/account/balance/")

    page.select_option("#id_kind", "TOP_UP")
    page.wait_for_url("**/account/balance/?kind=TOP_UP")
    assert "No transactions" in page.inner_text("#history")
    # htmx restores both from its history cache: the address changes, no page loads.
    page.go_back(wait_until="commit")
    wait_for(page, "location.search === '' && !!document.querySelector('#history td')")
    page.go_forward(wait_until="commit")
    wait_for(page, "location.search === '?kind=TOP_UP'")

    assert page.input_value("#id_kind") == "TOP_UP"
    assert "No transactions" in page.inner_text("#history")
