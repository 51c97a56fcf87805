"""The statement pages and downloads as the five roles: the owner reads their own; another
developer has no such statement; admins read a developer's under People with "View any prepaid
balance"; anonymous visitors are sent to sign in."""

from __future__ import annotations

import csv
import io
from http import HTTPStatus

import pytest
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from tests.conftest import usd

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "owner", "other_developer", "admin_without_permission", "portal_admin"]
MONTH = f"{timezone.now():%Y-%m}"


@pytest.fixture
def credited(developer):
    wallet_credit(
        account=developer.billing_account, money=usd("12.40"), transaction_id="pi_123",
        actor=Actor.system(),
    )  # fmt: skip
    return developer


@pytest.fixture
def as_role(client, request, credited):
    def login(role: str):
        if role == "owner":
            client.force_login(credited)
        elif role != "anonymous":
            client.force_login(request.getfixturevalue(role))
        return client

    return login


OWN = {  # the developer's own pages: staff have none, another developer has no such month
    "list": (lambda dev: reverse("my_statements"), {"owner": 200, "other_developer": 200}),
    "page": (lambda dev: reverse("my_statement", args=["USD", MONTH]), {"owner": 200}),
    "csv": (lambda dev: reverse("my_statement_file", args=["USD", MONTH, "csv"]), {"owner": 200}),
    "pdf": (lambda dev: reverse("my_statement_file", args=["USD", MONTH, "pdf"]), {"owner": 200}),
}
PEOPLE = {
    "list": lambda dev: reverse("people_statements", args=[dev.pk]),
    "page": lambda dev: reverse("people_statement", args=[dev.pk, "USD", MONTH]),
    "csv": lambda dev: reverse("people_statement_file", args=[dev.pk, "USD", MONTH, "csv"]),
    "pdf": lambda dev: reverse("people_statement_file", args=[dev.pk, "USD", MONTH, "pdf"]),
}
PEOPLE_STATUS = {"owner": 404, "other_developer": 404, "admin_without_permission": 403,
                 "portal_admin": 200}  # fmt: skip


def check(response, role: str, url: str, expected: int) -> None:
    if role == "anonymous":
        assert response.status_code == HTTPStatus.FOUND
        assert response["Location"] == f"{reverse('account_login')}?next={url}"
    else:
        assert response.status_code == expected, (role, url)


@pytest.mark.parametrize("what", OWN)
@pytest.mark.parametrize("role", ROLES)
def test_own_statements_as_each_role(as_role, credited, what, role):
    url_for, allowed = OWN[what]
    url = url_for(credited)
    response = as_role(role).get(url)
    check(response, role, url, allowed.get(role, 404))
    if role == "owner" and what == "list":
        assert reverse("my_statement_file", args=["USD", MONTH, "pdf"]) in response.content.decode()


@pytest.mark.parametrize("what", PEOPLE)
@pytest.mark.parametrize("role", ROLES)
def test_people_statements_as_each_role(as_role, credited, what, role):
    url = PEOPLE[what](credited)
    check(as_role(role).get(url), role, url, PEOPLE_STATUS.get(role, 0))


def test_the_owner_downloads_what_the_page_shows(client, credited):
    client.force_login(credited)
    page = client.get(reverse("my_statement", args=["USD", MONTH])).content.decode()
    assert "$12.40" in page and "pi_123" in page and "so far" in page

    download = client.get(reverse("my_statement_file", args=["USD", MONTH, "csv"]))
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="statement-USD-{MONTH}.csv"' in download["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(download.content.decode())))
    assert rows[2][1:] == ["Top-up", "Top-up", "pi_123", "12.40", "12.40"]
    assert rows[-1][1:] == ["closing balance so far", "", "", "", "12.40"]

    pdf = client.get(reverse("my_statement_file", args=["USD", MONTH, "pdf"]))
    assert pdf["Content-Type"] == "application/pdf"
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "pi_123" in text and "$12.40" in text


def test_months_without_a_statement_are_404(client, credited):
    client.force_login(credited)
    for currency, month in (("USD", "2001-01"), ("EUR", MONTH), ("USD", "2026-13")):
        url = reverse("my_statement_file", args=[currency, month, "csv"])
        assert client.get(url).status_code == 404, url
    assert client.get("/account/balance/statements/usd/2026-11.csv").status_code == 404
