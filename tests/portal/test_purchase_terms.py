"""The terms and conditions for purchases, set on the Monetization settings page by admins with
"Administer monetization", audited, and possibly empty."""

from __future__ import annotations

import html
from http import HTTPStatus

import pytest
from django.urls import reverse

from billing.billing_accounts.selectors import organization_settings_get
from billing.models import AuditLogEntry

pytestmark = pytest.mark.django_db

TERMS = "1. Calls are billed monthly.\n2. Fees are not refunded."


def save_terms(client, terms: str, *, follow: bool = False):
    return client.post(
        reverse("monetization_settings"),
        {"section": "purchase_terms", "purchase_terms": terms},
        follow=follow,
    )


def terms_audits() -> list[dict]:
    entries = AuditLogEntry.objects.filter(action="organization.purchase_terms.set")
    return list(entries.order_by("id").values("actor__email", "data"))


def test_an_admin_sets_the_terms_and_sees_them_on_the_page(client, portal_admin):
    client.force_login(portal_admin)
    response = save_terms(client, TERMS.replace("\n", "\r\n"), follow=True)

    page = html.unescape(response.content.decode())
    assert "The terms and conditions for purchases have been saved." in page
    assert f">\n{TERMS}</textarea>" in page
    # The browser's CRLF is stored as one line break: the text reads the same everywhere.
    assert organization_settings_get().purchase_terms == TERMS
    assert terms_audits() == [
        {"actor__email": portal_admin.email, "data": {"old": "", "new": TERMS}}
    ]


def test_saving_the_same_terms_again_changes_nothing(client, portal_admin):
    client.force_login(portal_admin)
    save_terms(client, TERMS)
    again = save_terms(client, TERMS.replace("\n", "\r\n"), follow=True)
    assert "Nothing changed." in again.content.decode()
    assert len(terms_audits()) == 1


def test_the_terms_may_be_emptied(client, portal_admin):
    client.force_login(portal_admin)
    save_terms(client, TERMS)
    assert save_terms(client, "  ").status_code == HTTPStatus.FOUND
    assert organization_settings_get().purchase_terms == ""
    assert terms_audits()[-1]["data"] == {"old": TERMS, "new": ""}


@pytest.mark.parametrize(
    "terms, message",
    [
        ("Terms\x00with a NUL", "Null characters are not allowed."),
        ("x" * 20_001, "Ensure this value has at most 20000 characters (it has 20001)."),
    ],
    ids=["nul", "too-long"],
)
def test_unstorable_terms_are_refused_and_nothing_changes(client, portal_admin, terms, message):
    client.force_login(portal_admin)
    save_terms(client, TERMS)
    response = save_terms(client, terms)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert message in html.unescape(response.content.decode())
    assert organization_settings_get().purchase_terms == TERMS
    assert len(terms_audits()) == 1


def test_saving_the_terms_leaves_the_other_settings_alone(client, portal_admin):
    client.force_login(portal_admin)
    client.post(
        reverse("monetization_settings"),
        {"section": "support", "support_email": "help@example.com"},
    )
    save_terms(client, TERMS)
    org = organization_settings_get()
    assert (org.support_email, org.purchase_terms) == ("help@example.com", TERMS)


@pytest.mark.parametrize(
    "who, status",
    [("developer", HTTPStatus.NOT_FOUND), ("admin_without_permission", HTTPStatus.FORBIDDEN)],
)
def test_only_administer_monetization_sets_them(client, request, who, status):
    client.force_login(request.getfixturevalue(who))
    assert save_terms(client, "Evil terms").status_code == status
    assert organization_settings_get().purchase_terms == ""
    assert terms_audits() == []


def test_anonymous_is_sent_to_sign_in(client):
    response = save_terms(client, "Evil terms")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))
    assert organization_settings_get().purchase_terms == ""
