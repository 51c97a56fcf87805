"""The parts of pages that htmx replaces are announced (aria-live) and keep keyboard focus:
paging with the keyboard must not throw the user back to the top of the page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from billing.billing_type.services import billing_type_set
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import BillingTypeChange
from billing.money import money_parse
from tests.browser.signing_in import signed_in_page
from tests.factories import AdminFactory, DeveloperFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_paging_the_history_by_keyboard_keeps_focus_and_is_announced(browser, live_server):
    developer = DeveloperFactory(email="priya@example.com")
    for n in range(45):  # three pages of history
        wallet_credit(
            account=developer.billing_account,
            money=money_parse("1.00", "USD"),
            transaction_id=f"t{n}",
            actor=Actor.system(),
        )
    page = signed_in_page(browser, live_server.url, "priya@example.com", width=390)
    page.goto(f"{live_server.url}/account/balance/")
    expect(page.locator("#history")).to_have_attribute("aria-live", "polite")

    page.focus(".pager a:has-text('Older')")
    page.keyboard.press("Enter")
    expect(page.locator("#history .pager")).to_contain_text("Page 2 of 3")
    expect(page.locator("#history-older")).to_be_focused()  # Enter again: the next page
    # htmx wires up the new link when it settles; Enter before that would load a whole page.
    expect(page.locator("#history")).not_to_have_class(re.compile("htmx-settling"))
    page.keyboard.press("Enter")
    expect(page.locator("#history .pager")).to_contain_text("Page 3 of 3")
    # The last page has no Older link: the transactions take focus, not the top of the page.
    expect(page.locator("#history")).to_be_focused()


def test_paging_people_by_keyboard_keeps_focus_and_is_announced(browser, live_server):
    DeveloperFactory.create_batch(30)
    AdminFactory(email="ada@example.com", portal_admin=True)
    page = signed_in_page(browser, live_server.url, "ada@example.com", width=390)
    page.goto(f"{live_server.url}/people/")
    expect(page.locator("#people")).to_have_attribute("aria-live", "polite")

    page.focus(".pager a:has-text('Next')")
    page.keyboard.press("Enter")
    expect(page.locator("#people .pager")).to_contain_text("Page 2 of 2")
    # Page 2 has no Next link: the list takes focus, and Tab goes on into it.
    expect(page.locator("#people")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#people a").first).to_be_focused()


def test_focus_stays_on_the_card_button_while_the_saved_card_is_awaited(browser, live_server):
    """Back from saving a card, the card box asks for it again every 2 s for a minute; each
    answer replaced the button a keyboard user may be on."""
    developer = DeveloperFactory(email="priya@example.com")
    billing_type_set(
        account=developer.billing_account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    page = signed_in_page(browser, live_server.url, "priya@example.com", width=390)
    page.goto(f"{live_server.url}/account/balance/?card=saving")
    button = page.get_by_role("button", name="Save a card")
    button.focus()
    with page.expect_response(lambda r: "card=saving" in r.url and "left=29" in r.url):
        pass
    expect(page.locator(".saved-card")).not_to_have_class(re.compile("htmx-settling"))
    expect(button).to_be_focused()
