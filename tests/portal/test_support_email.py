"""'Contact us' texts point at the support address the organisation configures."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.urls import reverse

from billing.billing_accounts.selectors import organization_settings_get
from billing.models import AuditLogEntry

pytestmark = pytest.mark.django_db


def save_support_email(client, address: str):
    return client.post(
        reverse("monetization_settings"), {"section": "support", "support_email": address}
    )


def test_an_admin_sets_the_support_address_and_developers_see_it(client, portal_admin, developer):
    client.force_login(portal_admin)
    assert save_support_email(client, "help@example.com").status_code == HTTPStatus.FOUND
    assert organization_settings_get().support_email == "help@example.com"
    assert AuditLogEntry.objects.filter(action="organization.support_email.set").exists()

    client.force_login(developer)
    account = client.get(reverse("my_account")).content.decode()
    assert 'Write to <a href="mailto:help@example.com">help@example.com</a> to change it.' in (
        account
    )
    assert "Questions? Write to" in client.get("/").content.decode()  # every page's footer


def test_without_one_the_pages_say_contact_the_administrators(client, developer):
    client.force_login(developer)
    page = client.get(reverse("my_account")).content.decode()
    assert "Contact them to change it." in page
    assert "Questions? Write to" not in page


def test_a_malformed_support_address_is_refused_and_nothing_changes(client, portal_admin):
    client.force_login(portal_admin)
    refused = save_support_email(client, "not an address")
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert "Enter a valid email address." in refused.content.decode()
    assert organization_settings_get().support_email == ""


@pytest.mark.parametrize("who", ["developer", "admin_without_permission"])
def test_only_administer_monetization_sets_it(client, who, request):
    client.force_login(request.getfixturevalue(who))
    response = save_support_email(client, "evil@example.com")
    assert response.status_code in (HTTPStatus.NOT_FOUND, HTTPStatus.FORBIDDEN)
    assert organization_settings_get().support_email == ""
