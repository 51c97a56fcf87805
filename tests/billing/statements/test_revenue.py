"""The revenue report: totals per product and per developer that add up, the Drupal module's
date messages, and the page as the five roles."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from http import HTTPStatus

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.billing_type.services import billing_type_set
from billing.catalog.rates import Band, ShareRate
from billing.ledger.entries import Actor, ledger_apply
from billing.ledger.services import wallet_credit, wallet_debit
from billing.models import BillingTypeChange, LedgerEntry
from billing.money import money_parse
from billing.subscriptions.services import subscription_purchase
from billing.usage.ingest import usage_batch_record
from tests.billing.usage.helpers import app_with_key, report
from tests.conftest import NANOS_PER_UNIT, usd
from tests.factories import ApiProductFactory, DeveloperFactory, published_plan

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system()
CENT = NANOS_PER_UNIT // 100
ROLES = ["anonymous", "owner", "other_developer", "admin_without_permission", "portal_admin"]
TODAY = f"{timezone.now():%Y-%m-%d}"


@pytest.fixture
def sales(prepaid_account):
    weather = ApiProductFactory(name="weather-api", display_name="Weather API")
    published_plan(
        weather, setup="5", consumption_pricing_type="FIXED_PER_UNIT",
        bands=[Band(0, 0, 10 * CENT)], revenue_share_type="FIXED",
        share_rates=[ShareRate(0, 0, Decimal("20"))],
    )  # fmt: skip
    a = prepaid_account
    wallet_credit(account=a, money=usd("100"), transaction_id="pi_a", actor=SYSTEM)
    subscription_purchase(account=a, product=weather, actor=SYSTEM)
    _, _, key = app_with_key(a, weather)
    usage_batch_record(events=[report(f"e{n}", key, "weather-api") for n in range(7)], actor=SYSTEM)
    # A caller's own id may start with "usage" (only "usage:" and "usage-owed:" are the portal's).
    wallet_debit(account=a, money=usd("2"), transaction_id="usage-2026-12-04", actor=SYSTEM)
    ledger_apply(
        account=a, currency="USD", delta=-usd("10").nanos, kind=LedgerEntry.Kind.REFUND,
        transaction_id="refund:ch_1:1000", actor=SYSTEM,
    )  # fmt: skip
    b = DeveloperFactory(email="b@example.com").billing_account
    billing_type_set(account=b, billing_type="PREPAID", changed_by=None,
                     source=BillingTypeChange.Source.ADMIN)  # fmt: skip
    wallet_credit(account=b, money=usd("30"), transaction_id="pi_b", actor=SYSTEM)
    wallet_credit(account=b, money=money_parse("99", "EUR"), transaction_id="pi_eur", actor=SYSTEM)
    return a.user, b.user


def csv_rows(client) -> list[list[str]]:
    url = reverse("revenue_report")
    response = client.get(url, {"currency": "USD", "first_day": TODAY, "last_day": TODAY,
                                "format": "csv"})  # fmt: skip
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_totals_per_product_and_developer_add_up(client, portal_admin, sales):
    a, b = sales
    client.force_login(portal_admin)
    rows = csv_rows(client)
    header = rows[0]
    assert header == ["group", "name", "setup_fees", "recurring_fees", "usage", "top_ups",
                      "refunds", "revenue_share"]  # fmt: skip
    by = {(row[0], row[1]): dict(zip(header[2:], map(Decimal, row[2:]), strict=True))
          for row in rows[1:]}  # fmt: skip
    weather = by[("product", "weather-api")]
    assert (weather["setup_fees"], weather["usage"], weather["revenue_share"]) == (
        Decimal("5"), Decimal("0.70"), Decimal("0.14"),
    )  # fmt: skip
    assert by[("product", "(charged through the API)")]["usage"] == Decimal("2")
    assert by[("developer", a.email)]["top_ups"] == Decimal("100")
    assert by[("developer", a.email)]["refunds"] == Decimal("10")
    assert by[("developer", b.email)]["top_ups"] == Decimal("30")  # not the EUR top-up
    total = by[("total", "")]
    for column in header[2:]:
        developers = sum(v[column] for (group, _), v in by.items() if group == "developer")
        assert developers == total[column], column
    assert total["usage"] == Decimal("2.70")


def test_the_page_shows_the_same_and_other_days_are_empty(client, portal_admin, sales):
    client.force_login(portal_admin)
    page = client.get(reverse("revenue_report")).content.decode()  # this month, by default
    assert 'value="EUR" selected' in page  # the first currency: EUR's top-up only
    page = client.get(reverse("revenue_report"), {"currency": "USD", "first_day": TODAY,
                                                  "last_day": TODAY}).content.decode()  # fmt: skip
    assert "weather-api" in page and "$5.00" in page and "Download CSV" in page
    empty = client.get(reverse("revenue_report"),
                       {"currency": "USD", "first_day": "2020-01-01", "last_day": "2020-01-31"})  # fmt: skip
    assert "There is no revenue in USD for these days." in empty.content.decode()


@pytest.mark.parametrize(
    ("first_day", "last_day", "message"),
    [
        ("2026-03-10", "2026-03-01", "The to date cannot be before the from date."),
        ("2999-01-01", "2999-01-02", "The from date cannot be in the future."),
        ("2020-01-01", "2022-01-01", "Choose at most a year at a time."),
        ("2020-02-30", "2020-03-01", "Enter a valid date."),
    ],
)
def test_bad_ranges_say_why_and_show_no_report(client, portal_admin, first_day, last_day, message):
    client.force_login(portal_admin)
    response = client.get(
        reverse("revenue_report"),
        {"currency": "USD", "first_day": first_day, "last_day": last_day, "format": "csv"},
    )
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("text/html")
    assert message in response.content.decode()


@pytest.mark.parametrize("role", ROLES)
def test_the_report_as_each_role(client, request, developer, role):
    expected = {"owner": 404, "other_developer": 404, "admin_without_permission": 403,
                "portal_admin": 200}  # fmt: skip
    if role == "owner":
        client.force_login(developer)
    elif role != "anonymous":
        client.force_login(request.getfixturevalue(role))
    url = reverse("revenue_report")
    for query in ({}, {"currency": "USD", "first_day": TODAY, "last_day": TODAY, "format": "csv"}):
        response = client.get(url, query)
        if role == "anonymous":
            assert response.status_code == HTTPStatus.FOUND
            assert response["Location"].startswith(f"{reverse('account_login')}?next=")
        else:
            assert response.status_code == expected[role]


def test_a_name_that_looks_like_a_formula_stays_text_in_the_csv(client, portal_admin):
    account = DeveloperFactory(email="=cmd@example.com").billing_account
    wallet_credit(account=account, money=usd("5"), transaction_id="pi_f", actor=SYSTEM)
    client.force_login(portal_admin)
    names = [row[1] for row in csv_rows(client)]
    assert "'=cmd@example.com" in names and "=cmd@example.com" not in names
