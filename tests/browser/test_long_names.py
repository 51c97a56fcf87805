"""Long email addresses and names stay inside the page, on a phone and on a desktop: a test
client sees the HTML but not whether it fits."""

from __future__ import annotations

import pytest

from tests.browser.signing_in import signed_in_page
from tests.factories import AdminFactory, DeveloperFactory

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
    assert LONG_EMAIL in developer.inner_text("dl")
    assert developer.evaluate(OVERFLOW) == {"page": 0, "card": 0}

    admin = signed_in_page(browser, live_server.url, "ada@example.com", width)
    admin.goto(f"{live_server.url}/people/")
    assert LONG_EMAIL in admin.inner_text("table")
    assert admin.evaluate(OVERFLOW)["page"] == 0
