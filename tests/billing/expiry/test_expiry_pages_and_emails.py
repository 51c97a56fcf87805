"""What developers see of expiring credit: the balance page says what expires when (as the five
roles), Add credit says credit expires and is not refundable, warnings are emailed 30, 7 and 1
days before (once each), the statement shows the expiry, and admins set the lifetime."""

from __future__ import annotations

import csv
import io
from datetime import UTC, timedelta
from http import HTTPStatus

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from billing.expiry.services import credit_lifetime_set, credits_expire
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit, wallet_debit
from billing.models import AuditLogEntry, CreditLot, LedgerEntry, OrganizationSettings
from billing.statements.documents import statement_csv
from billing.statements.selectors import statement_get
from tests.conftest import usd

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "owner", "other_developer", "admin_without_permission", "portal_admin"]


@pytest.fixture
def credited(prepaid_account):
    wallet_credit(
        account=prepaid_account, money=usd("12.40"), transaction_id="pi_1", actor=Actor.system()
    )
    return prepaid_account.user


def expiry_day() -> str:
    return f"{timezone.now().astimezone(UTC) + timedelta(days=365):%-d %b %Y}"


@pytest.mark.parametrize("role", ROLES)
def test_what_expires_when_as_each_role(client, request, credited, role):
    if role == "owner":
        client.force_login(credited)
    elif role != "anonymous":
        client.force_login(request.getfixturevalue(role))
    own = client.get(reverse("my_balance"))
    people = client.get(reverse("people_balance", args=[credited.pk]))
    said = f"<strong>$12.40</strong> expires on {expiry_day()}"
    if role == "anonymous":
        assert own.status_code == people.status_code == HTTPStatus.FOUND
        return
    assert (said in own.content.decode()) == (role == "owner")
    expected = {"portal_admin": 200, "admin_without_permission": 403}.get(role, 404)
    assert people.status_code == expected
    if role == "portal_admin":
        assert said in people.content.decode()
        assert "You are emailed 30, 7 and 1 days before" not in people.content.decode()


def test_a_spent_credit_is_not_listed_and_a_partly_spent_one_shows_what_is_left(client, credited):
    wallet_debit(
        account=credited.billing_account,
        money=usd("2.40"),
        transaction_id="u1",
        actor=Actor.system(),
    )
    client.force_login(credited)
    page = client.get(reverse("my_balance")).content.decode()
    assert f"<strong>$10.00</strong> expires on {expiry_day()}" in page
    wallet_debit(
        account=credited.billing_account, money=usd("10"), transaction_id="u2", actor=Actor.system()
    )
    assert 'data-testid="expiring"' not in client.get(reverse("my_balance")).content.decode()


def test_add_credit_says_credit_expires_and_is_not_refundable(client, credited):
    client.force_login(credited)
    page = client.get(reverse("add_credit", args=["USD"])).content.decode()
    assert "Credit expires 365 days after it is added and is not refundable." in page
    credit_lifetime_set(days=0, changed_by=None)
    page = client.get(reverse("add_credit", args=["USD"])).content.decode()
    assert "Prepaid credit does not expire and is not refundable." in page


def backdate(transaction_id: str, days: float) -> None:
    LedgerEntry.objects.filter(transaction_id=transaction_id).update(
        created_at=timezone.now() - timedelta(days=days)
    )


def test_warnings_go_out_30_7_and_1_days_before_once_each(credited):
    backdate("pi_1", 365 - 29.5)  # expires in 29.5 days
    call_command("expire_credits")
    call_command("expire_credits")
    assert [m.subject for m in mail.outbox] == [
        f"[Developer portal] $12.40 of your USD credit expires on {timezone.now() + timedelta(days=29.5):%-d %b %Y}"
    ]
    assert "not refundable" in mail.outbox[0].body
    assert mail.outbox[0].to == [credited.email]
    for days_left in (6.5, 0.5):
        backdate("pi_1", 365 - days_left)
        CreditLot.objects.update(expires_at=timezone.now() + timedelta(days=days_left))
        call_command("expire_credits")
        call_command("expire_credits")
    assert len(mail.outbox) == 3  # 30, 7 and 1 days before, once each


def test_a_run_that_missed_a_week_sends_only_the_most_urgent_warning(credited):
    backdate("pi_1", 365 - 5)
    CreditLot.objects.all().delete()
    from billing.models import Wallet  # noqa: PLC0415

    Wallet.objects.update(lots_counted_through=0)
    run = credits_expire(as_of=timezone.now())
    assert [key.rsplit(":", 1)[1] for key in run.warnings] == ["7d"]


def test_no_warning_for_credit_spent_before_it_is_sent(credited):
    backdate("pi_1", 365 - 20)
    run = credits_expire(as_of=timezone.now())
    wallet_debit(
        account=credited.billing_account,
        money=usd("12.40"),
        transaction_id="u1",
        actor=Actor.system(),
    )
    from billing.expiry.lots import lots_count  # noqa: PLC0415
    from billing.models import Wallet  # noqa: PLC0415

    lots_count(wallet_id=Wallet.objects.get().pk)
    from billing.notifications.expiry import credit_expiry_email  # noqa: PLC0415

    assert credit_expiry_email(key=run.warnings[0]) is False
    assert mail.outbox == []


def test_the_statement_shows_the_expiry_and_still_reconciles(credited):
    credit_lifetime_set(days=30, changed_by=None)
    wallet_credit(
        account=credited.billing_account,
        money=usd("5"),
        transaction_id="pi_2",
        actor=Actor.system(),
    )
    backdate("pi_2", 31)
    backdate("pi_1", 31 - 0.5)  # same month or the month before: both read below
    wallet_debit(
        account=credited.billing_account, money=usd("1"), transaction_id="u1", actor=Actor.system()
    )
    call_command("expire_credits")
    expiry = LedgerEntry.objects.get(kind="EXPIRY")
    assert expiry.amount == -usd("4").nanos  # the $5 lot, less the $1 it paid
    statement = statement_get(
        account=credited.billing_account, currency="USD", month=f"{timezone.now():%Y-%m}"
    )
    rows = list(csv.reader(io.StringIO(statement_csv(statement))))
    [line] = [row for row in rows if row[1] == "Expiry"]
    assert line[4] == "-4.00" and "expired on" in line[2] and line[3] == expiry.transaction_id
    assert rows[-1][1:2] + rows[-1][5:] == ["closing balance so far", "12.40"]  # 12.40 + 5 - 1 - 4
    call_command("check_ledger")


def test_admins_set_the_credit_lifetime_audited_and_refused_when_bad(client, portal_admin):
    client.force_login(portal_admin)
    url = reverse("monetization_settings")
    form = {
        "section": "statements",
        "balance_alert_percents": "50,20,5",
        "billing_history_months": "12",
    }
    assert client.post(url, {**form, "credit_lifetime_days": "90"}).status_code == HTTPStatus.FOUND
    assert OrganizationSettings.objects.get().credit_lifetime_days == 90
    entry = AuditLogEntry.objects.get(action="organization.credit_lifetime.set")
    assert entry.data == {"old": {"credit_lifetime_days": 365}, "new": {"credit_lifetime_days": 90}}
    bad = client.post(url, {**form, "credit_lifetime_days": "-1"})
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert OrganizationSettings.objects.get().credit_lifetime_days == 90
    # The banner at the top says which section of the long page holds the mistake.
    page = bad.content.decode()
    assert (
        'Nothing was saved: correct what is marked in <a href="#section-statements">'
        "Statements, low-balance alerts and credit expiry</a>." in page
    )
    assert '<section class="card" id="section-statements">' in page


def test_credit_of_one_day_is_warned_of_in_one_email(credited):
    wallet_credit(
        account=credited.billing_account,
        money=usd("7.60"),
        transaction_id="pi_2",
        actor=Actor.system(),
    )
    for transaction_id in ("pi_1", "pi_2"):
        backdate(transaction_id, 365 - 29.5)  # a few seconds apart: the same day
    other = wallet_credit(
        account=credited.billing_account,
        money=usd("1"),
        transaction_id="pi_3",
        actor=Actor.system(),
    )
    backdate(other.entry.transaction_id, 365 - 27.5)  # two days later: its own email
    call_command("expire_credits")
    assert sorted(m.subject.split("] ")[1].split(" of")[0] for m in mail.outbox) == [
        "$1.00",
        "$20.00",
    ]
