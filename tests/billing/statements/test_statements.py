"""Statements reconcile to the ledger to the nano: opening + lines = closing, closing = the ledger
at the month's end; usage per product and day with its calls; the CSV and the PDF say the same."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone
from pypdf import PdfReader

from billing.catalog.rates import Band
from billing.ledger.entries import Actor, ledger_apply
from billing.ledger.services import wallet_adjust, wallet_credit, wallet_debit
from billing.models import LedgerEntry, OrganizationSettings, Wallet
from billing.money import Money
from billing.statements.documents import amount_text, statement_csv, statement_pdf
from billing.statements.selectors import statement_get, statement_months
from billing.subscriptions.services import subscription_purchase
from billing.usage.ingest import usage_batch_record
from tests.billing.usage.helpers import app_with_key, report
from tests.conftest import NANOS_PER_UNIT, usd
from tests.factories import ApiProductFactory, published_plan

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system()
CENT = NANOS_PER_UNIT // 100


def this_month() -> datetime:
    now = timezone.now()
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def last_month() -> datetime:
    return (this_month() - timedelta(days=1)).replace(day=1)


def month_of(at: datetime) -> str:
    return f"{at:%Y-%m}"


def dated(transaction_prefix: str, at: datetime) -> None:
    """Entries are made now; move those of one action to `at` (a test's time travel)."""
    moved = LedgerEntry.objects.filter(transaction_id__startswith=transaction_prefix)
    assert moved.exists(), transaction_prefix
    moved.update(created_at=at)


def usage_dated(at: datetime) -> None:
    """Move the usage entries just made (not yet moved) to `at`."""
    LedgerEntry.objects.filter(
        transaction_id__startswith="usage:", created_at__gte=timezone.now() - timedelta(minutes=5)
    ).update(created_at=at)


@pytest.fixture
def month_of_entries(prepaid_account):
    """A month (last month) of every kind of entry, one entry before it and two after it."""
    account = prepaid_account
    weather = ApiProductFactory(name="weather-api", display_name="Weather API")
    maps = ApiProductFactory(name="maps-api", display_name="Maps API")
    for product in (weather, maps):
        published_plan(
            product,
            setup="5",
            consumption_pricing_type="FIXED_PER_UNIT",
            bands=[Band(0, 0, 3 * CENT)],
        )
    start = last_month()
    wallet_credit(account=account, money=usd("20"), transaction_id="pi_before", actor=SYSTEM)
    dated("pi_before", start - timedelta(days=3))
    wallet_credit(account=account, money=usd("100"), transaction_id="pi_first", actor=SYSTEM)
    dated("pi_first", start + timedelta(days=1, hours=9))
    subscription_purchase(account=account, product=weather, actor=SYSTEM)
    subscription_purchase(account=account, product=maps, actor=SYSTEM)
    dated("purchase:", start + timedelta(days=2))
    _, _, key = app_with_key(account, weather, maps)
    # Day 5: two batches; the second mixes both products. Day 6: one more.
    usage_batch_record(events=[report(f"w{n}", key, "weather-api") for n in range(3)], actor=SYSTEM)
    usage_batch_record(
        events=[report("w3", key, "weather-api"), report("m0", key, "maps-api", units=5)],
        actor=SYSTEM,
    )
    usage_dated(start + timedelta(days=4, hours=10))
    usage_batch_record(events=[report("m1", key, "maps-api", units=2)], actor=SYSTEM)
    usage_dated(start + timedelta(days=5, hours=1))
    wallet_debit(account=account, money=usd("1.25"), transaction_id="api-debit", actor=SYSTEM)
    dated("api-debit", start + timedelta(days=6))
    ledger_apply(
        account=account, currency="USD", delta=-usd("10").nanos, kind=LedgerEntry.Kind.REFUND,
        transaction_id="refund:ch_1:1000", actor=SYSTEM, memo="Refund of a top-up",
    )  # fmt: skip
    dated("refund:", start + timedelta(days=7))
    wallet_adjust(
        account=account, change=Money(1, "USD"), actor=SYSTEM, reason="Rounding",
        transaction_id="adjust-1",
    )  # fmt: skip
    dated("adjust-1", start + timedelta(days=8))
    # The last nanosecond of the month is in it; the month's first instant after it is not.
    wallet_credit(account=account, money=usd("7"), transaction_id="pi_last", actor=SYSTEM)
    dated("pi_last", this_month() - timedelta(microseconds=1))
    wallet_credit(account=account, money=usd("3"), transaction_id="pi_after", actor=SYSTEM)
    dated("pi_after", this_month())
    return account


def ledger_until(account, at: datetime) -> int:
    entries = LedgerEntry.objects.filter(wallet__billing_account=account, created_at__lt=at)
    return entries.aggregate(total=Sum("amount"))["total"] or 0


def test_a_month_reconciles_to_the_ledger_to_the_nano(month_of_entries):
    account = month_of_entries
    start = last_month()
    statement = statement_get(account=account, currency="USD", month=month_of(start))

    assert statement.opening == usd("20")
    assert statement.opening.nanos == ledger_until(account, start)
    assert statement.closing.nanos == ledger_until(account, this_month())
    assert statement.opening.nanos + sum(line.amount.nanos for line in statement.lines) == (
        statement.closing.nanos
    )
    running = statement.opening.nanos
    for line in statement.lines:
        running += line.amount.nanos
        assert line.balance.nanos == running
    assert not statement.so_far
    usage = [(line.day.day, line.description, line.amount, line.calls) for line in statement.lines
             if line.calls is not None]  # fmt: skip
    assert usage == [
        (5, "Weather API: 4 calls", -usd("0.12"), 4),
        (5, "Maps API: 5 calls", -usd("0.15"), 5),
        (6, "Maps API: 2 calls", -usd("0.06"), 2),
    ]
    kinds = [line.kind for line in statement.lines]
    assert kinds.count("Top-up") == 2 and "Refund" in kinds and "Adjustment" in kinds
    assert [line.reference for line in statement.lines if line.kind == "Top-up"] == [
        "pi_first",
        "pi_last",
    ]
    fees = [line for line in statement.lines if line.kind == "Fee"]
    assert len(fees) >= 2 and all(line.reference.startswith("purchase:") for line in fees)
    # This month: opens where last month closed, and is "so far".
    now = statement_get(account=account, currency="USD", month=month_of(this_month()))
    assert now.opening == statement.closing and now.so_far
    assert now.closing.nanos == Wallet.objects.get(billing_account=account).balance
    call_command("check_ledger")


def test_the_csv_says_the_same_exactly(month_of_entries):
    statement = statement_get(
        account=month_of_entries, currency="USD", month=month_of(last_month())
    )
    rows = list(csv.reader(io.StringIO(statement_csv(statement))))

    assert rows[0] == ["date", "kind", "description", "reference", "amount", "balance"]
    assert rows[1][1] == "opening balance" and rows[1][4] == ""
    assert rows[-1][1] == "closing balance" and rows[-1][4] == ""
    opening, closing = Decimal(rows[1][5]), Decimal(rows[-1][5])
    assert closing - opening == sum(Decimal(row[4]) for row in rows[2:-1])
    assert closing == statement.closing.decimal
    assert "0.000000001" in [row[4] for row in rows]  # the adjustment, to the nano
    assert [rows[n][c] for n in range(len(rows)) for c in (2, 4)
                                           if rows[n][2] == "Maps API: 5 calls"] == ["Maps API: 5 calls", "-0.15"]  # fmt: skip


def test_an_amount_is_exact_decimal_text():
    assert amount_text(Money(1, "USD")) == "0.000000001"
    assert amount_text(usd("12.5")) == "12.50"
    assert amount_text(-usd("3")) == "-3.00"
    assert amount_text(Money(5 * NANOS_PER_UNIT, "JPY")) == "5"


def test_a_csv_cell_never_runs_as_a_formula(prepaid_account):
    wallet_credit(
        account=prepaid_account, money=usd("5"), transaction_id="=HYPERLINK(1)", actor=SYSTEM,
        memo="@SUM(A1)",
    )  # fmt: skip
    statement = statement_get(account=prepaid_account, currency="USD", month=month_of(this_month()))
    text = statement_csv(statement)
    assert "'=HYPERLINK(1)" in text and "'@SUM(A1)" in text


def test_usage_a_wallet_at_its_floor_could_not_pay_is_a_line_of_its_own(prepaid_account):
    product = ApiProductFactory(name="weather-api", display_name="Weather API")
    published_plan(
        product, consumption_pricing_type="FIXED_PER_UNIT", bands=[Band(0, 0, 40 * CENT)]
    )
    wallet_credit(account=prepaid_account, money=usd("1"), transaction_id="pi", actor=SYSTEM)
    subscription_purchase(account=prepaid_account, product=product, actor=SYSTEM)
    _, _, key = app_with_key(prepaid_account, product)
    usage_batch_record(events=[report(f"e{n}", key, "weather-api") for n in range(3)], actor=SYSTEM)

    statement = statement_get(account=prepaid_account, currency="USD", month=month_of(this_month()))
    usage = [(line.description, line.amount) for line in statement.lines if line.kind == "Usage"]
    assert usage == [
        ("Weather API: 3 calls", -usd("1.20")),
        ("Usage owed, paid from a later credit", usd("0.20")),
    ]
    assert statement.closing == Money(0, "USD") == statement.lines[-1].balance


def test_months_go_back_to_the_first_entry_at_most_the_history_limit(month_of_entries):
    assert statement_months(account=month_of_entries) == [
        (
            "USD",
            [
                month_of(this_month()),
                month_of(last_month()),
                month_of(last_month() - timedelta(days=3)),
            ],
        )
    ]
    OrganizationSettings.objects.update(billing_history_months=2)
    assert statement_months(account=month_of_entries) == [
        ("USD", [month_of(this_month()), month_of(last_month())])
    ]


def test_the_pdf_renders_the_statement(month_of_entries):
    account = month_of_entries
    account.legal_company_name = "Ñandú Analytics GmbH"
    account.address = "Hauptstraße 1\n10115 Berlin"
    account.country = "DE"
    account.tax_id = "DE123456789"
    statement = statement_get(account=account, currency="USD", month=month_of(last_month()))
    pdf = statement_pdf(statement, title="Statement", provider="Developer portal (demo-org)")

    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    for expected in (
        "Ñandú Analytics GmbH", "Hauptstraße 1", "DE123456789", "Opening balance",
        "Closing balance", "Weather API: 4 calls", "pi_first", str(statement.closing),
    ):  # fmt: skip
        assert expected in text, expected
