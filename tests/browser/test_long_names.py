"""Long email addresses and names stay inside the page, on a phone and on a desktop: a test
client sees the HTML but not whether it fits. The last test visits every page of every role with
a developer who typed 300 characters without a space into each name (issue 13)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core import mail

from accounts.models import User
from billing.billing_type.services import billing_type_set
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_adjust, wallet_credit
from billing.models import BillingTypeChange, TopUp
from billing.payments.cards import card_save
from tests.browser.signing_in import signed_in_page
from tests.conftest import NANOS_PER_UNIT, usd
from tests.factories import PASSWORD, AdminFactory, DeveloperFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

LONG_EMAIL = "maximilian.alexander.contractor@integration-partners-worldwide.example.com"

# How far the page can be scrolled sideways, and how far the Profile card's email sticks out.
OVERFLOW = """() => {
  const dd = [...document.querySelectorAll('dd')].find(d => d.textContent.includes('@'));
  const card = dd ? dd.closest('.card').getBoundingClientRect() : null;
  return {
    page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    card: card ? Math.max(0, dd.getBoundingClientRect().right - card.right) : 0,
  };
}"""


@pytest.mark.parametrize("width", [390, 1280])
def test_a_long_email_stays_inside_my_account_and_people(browser, live_server, width):
    DeveloperFactory(email=LONG_EMAIL, first_name="Maximilian Alexander", last_name="Contractor")
    AdminFactory(email="ada@example.com", portal_admin=True)

    developer = signed_in_page(browser, live_server.url, LONG_EMAIL, width)
    assert LONG_EMAIL in developer.inner_text(".messages")  # "Successfully signed in as …"
    assert developer.evaluate(OVERFLOW)["page"] == 0  # where signing in lands
    developer.goto(f"{live_server.url}/account/")
    assert LONG_EMAIL in developer.inner_text("dl")
    assert developer.evaluate(OVERFLOW) == {"page": 0, "card": 0}

    admin = signed_in_page(browser, live_server.url, "ada@example.com", width)
    admin.goto(f"{live_server.url}/people/")
    assert LONG_EMAIL in admin.inner_text("table")
    assert admin.evaluate(OVERFLOW)["page"] == 0


# Where an element's text goes on to a new line: the characters either side of each break.
LINE_BREAKS = """el => {
  const breaks = [], range = document.createRange();
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  let top = null, before = '';
  while (walker.nextNode()) {
    const text = walker.currentNode;
    for (let i = 0; i < text.length; i++) {
      range.setStart(text, i);
      range.setEnd(text, i + 1);
      const box = range.getClientRects()[0];
      if (!box) continue;
      if (top !== null && box.top > top + 1) breaks.push(before + text.data[i]);
      top = box.top;
      before = text.data[i];
    }
  }
  return breaks;
}"""


def at_a_sensible_point(pair: str) -> bool:
    """After the @ or a hyphen, or before a dot: not in the middle of a word."""
    return pair[0] in "@-" or pair[1] == "."


@pytest.mark.parametrize("width", [390, 1280])
def test_a_long_email_wraps_after_its_at_sign_or_before_a_dot(browser, live_server, width):
    DeveloperFactory(email=LONG_EMAIL, first_name="Maximilian", last_name="Contractor")
    AdminFactory(email="ada@example.com", portal_admin=True)

    developer = signed_in_page(browser, live_server.url, LONG_EMAIL, width)
    developer.goto(f"{live_server.url}/account/")
    email = developer.locator("dd", has_text="@")
    assert email.inner_text() == LONG_EMAIL  # the break points add no characters
    breaks = email.evaluate(LINE_BREAKS)
    assert breaks  # too long for the Profile card's line at either width
    assert all(map(at_a_sensible_point, breaks)), breaks

    admin = signed_in_page(browser, live_server.url, "ada@example.com", width)
    admin.goto(f"{live_server.url}/people/")
    email = admin.locator("td[data-label=Email]", has_text="@integration")
    assert email.inner_text() == LONG_EMAIL
    breaks = email.evaluate(LINE_BREAKS)
    assert all(map(at_a_sensible_point, breaks)), breaks


# --- Whatever a person typed, no page scrolls sideways (issue 13) --------------------------------

# 300 characters without a space, typed into the first name, last name and company fields: the
# inputs keep what the fields hold (150, 150 and 200), which is what every page then shows.
LONG_WORD = ("Wolfeschlegelsteinhausenbergerdorff" * 9)[:300]
LONG_SIGN_UP_EMAIL = (
    "maximilian.alexander.wolfeschlegelsteinhausenbergerdorff@integration-partners-worldwide"
    ".example.com"
)
# An admin's reason for an adjustment is typed too; the history and the audit log show it.
LONG_REASON = LONG_WORD
ROLES = ("developer", "admin_without_permission", "portal_admin")
WIDTHS = (390, 1280)


def _choose_postpaid(page) -> None:
    page.check("input[name=billing_type][value=POSTPAID]")
    page.click("main button:has-text('Continue')")


def _review_adjustment(page) -> None:
    page.check("input[name=direction][value=increase]")
    page.fill("input[name=amount]", "1")
    page.fill("textarea[name=reason]", LONG_REASON)
    page.click("main button:has-text('Review adjustment')")


def _change_default_billing_type(page) -> None:
    page.check("input[name=default_billing_type][value=PREPAID]")
    page.click("main button:has-text('Save configuration')")


def _remove_usd(page) -> None:
    page.get_by_label("Remove USD").check()
    page.click("main button:has-text('Save Add credit settings')")


def _switch_auto_recharge_on_below_balance(page) -> None:
    panel = page.locator(".recharge[data-currency=USD]")
    panel.locator("input[name='recharge-USD-enabled']").check()
    panel.locator("input[name='recharge-USD-threshold']").fill("50")
    panel.locator("input[name='recharge-USD-mode'][value=FIXED]").check()
    panel.locator("input[name='recharge-USD-amount']").fill("25")
    panel.locator("button:has-text('Save auto-recharge')").click()


@dataclass(frozen=True)
class Page:
    """A page to measure: `path` is formatted with the developer's ids ({dev}, {top_up},
    {open_top_up}); `status` is what each role that visits it gets; `submit`, when set, is
    done on that page to reach one that only a POST shows, which must contain `shows`."""

    name: str
    path: str
    status: dict[str, int]
    submit: Callable[[Any], None] | None = None
    shows: str = ""


EVERYONE = dict.fromkeys(ROLES, 200)
DEVELOPER = {"developer": 200}
ADMINS = {"admin_without_permission": 200, "portal_admin": 200}
# Developers get 404 for admin pages, admins lacking the permission 403.
PERMITTED = {"developer": 404, "admin_without_permission": 403, "portal_admin": 200}
PORTAL_ADMIN = {"portal_admin": 200}

# Every page of the portal a role can reach, with the long-named developer in it. Add new pages
# here (plans, apps, usage): each is measured for each role listed, at each width.
PAGES = [
    Page("home", "/", EVERYONE),
    Page("my account", "/account/", EVERYONE),
    Page("balance", "/account/balance/", DEVELOPER),
    Page(
        "auto-recharge confirmation",
        "/account/balance/",
        DEVELOPER,
        _switch_auto_recharge_on_below_balance,
        "Saving charges your card now",
    ),
    Page("add credit", "/account/balance/add-credit/USD/", DEVELOPER),
    Page("top-up status", "/account/balance/top-ups/{top_up}/", DEVELOPER),
    Page("pending top-up status", "/account/balance/top-ups/{open_top_up}/", DEVELOPER),
    Page("top-up cancel", "/account/balance/top-ups/{open_top_up}/cancel/", DEVELOPER),
    Page("test payment", "/account/balance/top-ups/{open_top_up}/test-payment/", DEVELOPER),
    Page("test card", "/account/balance/card/test/", DEVELOPER),
    Page("email addresses", "/accounts/email/", DEVELOPER),
    Page("change password", "/accounts/password/change/", DEVELOPER),
    Page("people", "/people/", {**ADMINS, "developer": 404}),
    Page("people search", "/people/?q=" + LONG_WORD[:100], ADMINS),
    Page("people: account", "/people/{dev}/account/", {**ADMINS, "developer": 404}),
    Page("people: billing type", "/people/{dev}/account/billing-type/", PERMITTED),
    Page(
        "people: billing type confirmation",
        "/people/{dev}/account/billing-type/",
        PORTAL_ADMIN,
        _choose_postpaid,
        "Set the billing type to Postpaid?",
    ),
    Page("people: balance", "/people/{dev}/account/balance/", PERMITTED),
    Page(
        "people: adjustment confirmation",
        "/people/{dev}/account/balance/",
        PORTAL_ADMIN,
        _review_adjustment,
        "Increase the USD balance by $1.00?",
    ),
    Page("monetization settings", "/admin/config/monetization/settings/", PERMITTED),
    Page(
        "default billing type confirmation",
        "/admin/config/monetization/settings/",
        PORTAL_ADMIN,
        _change_default_billing_type,
        "Make Prepaid the default billing type?",
    ),
    Page(
        "currency removal confirmation",
        "/admin/config/monetization/settings/",
        PORTAL_ADMIN,
        _remove_usd,
        "Stop Add credit in USD?",
    ),
    # Django's own admin: its stylesheet, not the portal's, keeps these in the window.
    Page("django admin", "/admin/", ADMINS),
    Page("django admin: audit log", "/admin/billing/auditlogentry/", PORTAL_ADMIN),
    Page("django admin: add credit log", "/admin/billing/topup/", PORTAL_ADMIN),
]

SIDEWAYS = "() => [document.documentElement.scrollWidth, window.innerWidth]"


def sign_up_with_long_names(browser, base_url: str, width: int):
    """The developer signs up and fills in Billing details through the real forms, typing 300
    characters into each name; returns their signed-in page."""
    page = browser.new_context(viewport={"width": width, "height": 844}).new_page()
    page.goto(f"{base_url}/accounts/signup/")
    page.fill("input[name=email]", LONG_SIGN_UP_EMAIL)
    page.fill("input[name=first_name]", LONG_WORD)
    page.fill("input[name=last_name]", LONG_WORD)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/confirm-email/$"))
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[-1].body).group(0)
    page.goto(link)
    page.click("main button[type=submit]")
    page.goto(f"{base_url}/account/")
    page.fill("input[name=legal_company_name]", LONG_WORD)
    page.click("main button:has-text('Save billing details')")
    page.wait_for_selector(".message.success")
    return page


def give_history(developer, admin) -> dict[str, str]:
    """Prepaid, with a wallet, a paid and an open top-up, an adjustment with a long reason and
    a saved card; returns the ids the page paths need."""
    account = developer.billing_account
    billing_type_set(
        account=account,
        billing_type="PREPAID",
        changed_by=admin,
        source=BillingTypeChange.Source.ADMIN,
    )
    paid = TopUp.objects.create(
        billing_account=account, currency="USD", amount=20 * NANOS_PER_UNIT, state="SUCCEEDED"
    )
    wallet_credit(
        account=account,
        money=usd("20"),
        transaction_id=f"pi_long_{paid.pk}",
        actor=Actor.stripe(),
        memo="Card payment",
    )
    wallet_adjust(account=account, change=usd("5"), actor=Actor.for_user(admin), reason=LONG_REASON)
    open_top_up = TopUp.objects.create(
        billing_account=account, currency="USD", amount=10 * NANOS_PER_UNIT
    )
    open_top_up.checkout_url = f"/account/balance/top-ups/{open_top_up.public_id}/test-payment/"
    open_top_up.save(update_fields=["checkout_url"])
    card_save(account=account, payment_method_id="pm_offline_visa_4242", brand="visa", last4="4242")
    return {
        "dev": str(developer.pk),
        "top_up": str(paid.public_id),
        "open_top_up": str(open_top_up.public_id),
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_scrolls_sideways_whatever_was_typed(browser, live_server, width, role):
    base = live_server.url
    developer_page = sign_up_with_long_names(browser, base, width)
    developer = User.objects.get(email=LONG_SIGN_UP_EMAIL)
    # The inputs kept as much as the fields hold: every character of it is shown somewhere.
    assert (developer.first_name, developer.last_name) == (LONG_WORD[:150], LONG_WORD[:150])
    assert developer.billing_account.legal_company_name == LONG_WORD[:200]
    admin = AdminFactory(email="ada@example.com", portal_admin=True)
    ids = give_history(developer, admin)

    if role == "developer":
        page = developer_page
    else:
        AdminFactory(email="sam@example.com", portal_admin=role == "portal_admin")
        page = signed_in_page(browser, base, "sam@example.com", width)

    sideways = []
    for visit in [p for p in PAGES if role in p.status]:
        response = page.goto(base + visit.path.format(**ids))
        assert response.status == visit.status[role], visit.name
        if visit.submit:
            visit.submit(page)
            page.wait_for_load_state()
            assert visit.shows in page.inner_text("main"), visit.name
        scroll_width, inner_width = page.evaluate(SIDEWAYS)
        if scroll_width > inner_width:
            sideways.append(f"{visit.name}: {scroll_width} px wide in {inner_width} px")
    assert not sideways, "pages wider than the window:\n" + "\n".join(sideways)
