from __future__ import annotations

import html
import re
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import BillingAccount
from billing.money import money_parse
from tests.factories import DeveloperFactory

pytestmark = pytest.mark.django_db


def test_signup_verifies_email_and_creates_a_billing_account(client):
    response = client.post(
        reverse("account_signup"),
        {
            "email": "New.Dev@Example.com",
            "first_name": "New",
            "last_name": "Dev",
            "password1": "a-long-enough-passphrase",
            "password2": "a-long-enough-passphrase",
        },
    )
    assert response.status_code == HTTPStatus.FOUND
    user = User.objects.get(email__iexact="new.dev@example.com")
    assert (user.first_name, user.last_name, user.is_staff) == ("New", "Dev", False)
    assert BillingAccount.objects.get(user=user).billing_type == ""

    # Mandatory verification: no My Account before the link in the email is followed.
    assert client.get(reverse("my_account")).status_code == HTTPStatus.FOUND
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/confirm-email/\S+/)", mail.outbox[0].body).group(1)
    client.post(link)
    page = client.get(reverse("my_account"))
    assert page.status_code == HTTPStatus.OK
    assert "Not specified (defaults to Postpaid)" in page.content.decode()


def test_my_account_shows_profile_and_saves_billing_details(client, developer):
    client.force_login(developer)
    page = client.get(reverse("my_account")).content.decode()
    assert developer.email in page and developer.get_full_name() in page

    response = client.post(reverse("my_account"), {"legal_company_name": "  Acme Widgets Ltd  "})
    assert response.status_code == HTTPStatus.FOUND
    developer.billing_account.refresh_from_db()
    assert developer.billing_account.legal_company_name == "Acme Widgets Ltd"


def test_billing_details_for_statements_are_saved_and_shown_to_admins(
    client, developer, portal_admin
):
    client.force_login(developer)
    details = {
        "legal_company_name": "Acme Widgets Ltd",
        "address": "  1 Main Street \r\n\r\n Springfield  ",
        "country": "DE",
        "tax_id": " DE123456789 ",
    }
    assert client.post(reverse("my_account"), details).status_code == HTTPStatus.FOUND
    account = developer.billing_account
    account.refresh_from_db()
    assert (account.address, account.country, account.tax_id) == (
        "1 Main Street\nSpringfield", "DE", "DE123456789",
    )  # fmt: skip
    page = client.get(reverse("my_account")).content.decode()
    assert '<option value="DE" selected>Germany</option>' in page
    client.force_login(portal_admin)
    page = client.get(reverse("people_account", args=[developer.pk])).content.decode()
    assert "1 Main Street<br>Springfield" in page and "DE123456789" in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("country", "XX", "Select a valid choice"),
        ("tax_id", "DE1\x07", "must be one line"),
        ("address", "a\x07b", "cannot hold control characters"),
    ],
)
def test_bad_billing_details_are_refused_and_nothing_changes(
    client, developer, field, value, message
):
    client.force_login(developer)
    response = client.post(reverse("my_account"), {"legal_company_name": "Acme", field: value})
    assert response.status_code == HTTPStatus.OK and message in response.content.decode()
    developer.billing_account.refresh_from_db()
    assert developer.billing_account.legal_company_name == ""


def test_too_long_company_name_is_refused_with_a_message(client, developer):
    client.force_login(developer)
    response = client.post(reverse("my_account"), {"legal_company_name": "x" * 201})
    assert response.status_code == HTTPStatus.OK
    assert "Ensure this value has at most 200 characters" in response.content.decode()
    developer.billing_account.refresh_from_db()
    assert developer.billing_account.legal_company_name == ""


def test_people_search_and_paging(client, portal_admin):

    DeveloperFactory.create_batch(30)
    DeveloperFactory(first_name="Zelda", last_name="Quartz", email="zq@example.net")
    client.force_login(portal_admin)
    first = client.get(reverse("people_list")).content.decode()
    assert "31 developers." in first and "Page 1 of 2" in first
    found = client.get(reverse("people_list"), {"q": "quartz"}).content.decode()
    assert "zq@example.net" in found and "1 developer matching" in found
    # htmx asks for the table only.
    partial = client.get(reverse("people_list"), {"q": "zq@"}, HTTP_HX_REQUEST="true")
    assert "<html" not in partial.content.decode() and "zq@example.net" in partial.content.decode()
    assert "organisation default" in partial.content.decode()
    assert partial["Vary"].count("HX-Request") == 1  # Back must not show the cached table
    # htmx restoring this address after Back (its cache missed) puts the answer in <body>.
    restore = client.get(
        reverse("people_list"),
        {"q": "zq@"},
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert 'id="people-search"' in restore.content.decode()
    assert admin_rows(client.get(reverse("people_list"), {"q": portal_admin.email})) == 0


def admin_rows(response) -> int:
    return (
        response.content.decode().count("<tr>") - 1 if "<table" in response.content.decode() else 0
    )


def test_seed_demo_is_idempotent(capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "admin@example.com" in out and "demo-password-123" in out
    assert User.objects.count() == 5  # four logins and the README's gateway
    gateway = User.objects.get(email="gateway@example.com")
    assert gateway.has_perm("billing.report_usage") and not gateway.has_usable_password()
    admin = User.objects.get(email="admin@example.com")
    support = User.objects.get(email="support@example.com")
    assert admin.has_perm("billing.update_any_billing_type")
    assert support.is_staff and not support.has_perm("billing.update_any_billing_type")
    assert User.objects.get(email="prepaid@example.com").billing_account.billing_type == "PREPAID"
    assert User.objects.get(email="developer@example.com").billing_account.billing_type == ""


def test_portal_admin_group_holds_the_drupal_permission_titles():

    names = set(Group.objects.get(name="Portal admin").permissions.values_list("name", flat=True))
    assert names == {
        "Update any billing type",
        "Administer monetization",
        "View any prepaid balance",
        "Adjust any prepaid balance",
        "View Add Credit Log",
        "Charge usage to any prepaid balance",
        # The Django admin's token list, to revoke a leaked gateway token.
        "Can view api token",
        "Can change api token",
        # The audit log in the Django admin, read-only.
        "Can view audit log entry",
        # Selling API access (DESIGN.md): the Drupal module's plan permissions, and the Django
        # admin's pages for products and plans, and a read-only list of purchases.
        "View rate plan",
        "Purchase any rate plan",
        "View any purchased plan",
        "Update any purchased plan",
        "Can add API product",
        "Can change API product",
        "Can delete API product",
        "Can view API product",
        "Can add rate plan",
        "Can change rate plan",
        "Can delete rate plan",
        "Can view rate plan",
        "Can view subscription",
        "View revenue reports",
    }


def test_people_shows_balances_to_admins_who_may_view_them(
    client, portal_admin, admin_without_permission, developer
):

    account = BillingAccount.objects.get_or_create(user=developer)[0]
    for currency, amount in (("USD", "12.5"), ("EUR", "3")):
        wallet_credit(
            account=account,
            money=money_parse(amount, currency),
            transaction_id=f"t-{currency}",
            actor=Actor.system(),
        )
    client.force_login(portal_admin)
    with CaptureQueriesContext(connection) as few:
        page = client.get(reverse("people_list")).content.decode()
    assert "<th>Balances</th>" in page and "$12.50" in page and "€3.00" in page
    DeveloperFactory.create_batch(10)
    with CaptureQueriesContext(connection) as more:
        client.get(reverse("people_list"))
    assert len(more.captured_queries) == len(few.captured_queries)  # no query per developer

    client.force_login(admin_without_permission)
    page = client.get(reverse("people_list")).content.decode()
    assert developer.email in page
    assert "Balances" not in page and "$12.50" not in page


def test_signup_errors_show_under_the_input_they_are_about(client):
    """allauth's default puts an error above the label, where it reads as the previous field's."""
    page = client.post(
        reverse("account_signup"),
        {"email": "not-an-email", "first_name": "Ada", "last_name": "", "password1": "x"},
    ).content.decode()
    email_input = page.index('name="email"')
    # (The error summary above the form names it too; this is the one under the input.)
    email_error = page.index("Enter a valid email address.", email_input)
    last_name_input = page.index('name="last_name"')
    last_name_error = page.index("This field is required.", last_name_input)
    password_input = page.index('name="password1"')
    assert email_input < email_error < page.index('name="first_name"')
    assert last_name_input < last_name_error < password_input
    assert User.objects.count() == 0


def test_my_account_links_to_changing_the_password_and_email_addresses(client, developer):
    """allauth's pages existed, but nothing in the portal led to them."""
    client.force_login(developer)
    page = client.get(reverse("my_account")).content.decode()
    assert f'<a href="{reverse("account_change_password")}">Change password</a>' in page
    assert f'<a href="{reverse("account_email")}">Email addresses</a>' in page
    assert client.get(reverse("account_change_password")).status_code == HTTPStatus.OK
    assert client.get(reverse("account_email")).status_code == HTTPStatus.OK


def test_an_admin_viewing_a_developer_gets_no_link_to_their_own_password(
    client, developer, portal_admin
):
    client.force_login(portal_admin)
    page = client.get(reverse("people_account", args=[developer.pk])).content.decode()
    assert developer.email in page
    assert reverse("account_change_password") not in page


@pytest.mark.parametrize(
    "url, wording",
    [
        ("/accounts/login/", ["Sign in", "Remember me"]),
        ("/accounts/signup/", ["Sign up"]),
        ("/accounts/password/reset/", ["Password reset"]),
    ],
)
def test_allauths_pages_use_the_portals_sentence_case(client, url, wording):

    text = html.unescape(re.sub(r"<[^>]+>", " ", client.get(url).content.decode()))
    for words in wording:
        assert words in text
    for title_case in ("Sign In", "Sign Up", "Remember Me", "Password Reset"):
        assert title_case not in text
