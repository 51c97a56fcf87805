from __future__ import annotations

from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse

from billing.billing_accounts.selectors import organization_settings_get
from billing.billing_type.selectors import billing_type_counts
from billing.billing_type.services import billing_type_set, organization_default_billing_type_set
from billing.exceptions import BillingError, BillingTypeConflict
from billing.models import AuditLogEntry, BillingType, BillingTypeChange
from portal.selectors import developers_list

pytestmark = pytest.mark.django_db


def test_new_developer_follows_the_organisation_default(client, developer):
    client.force_login(developer)
    page = client.get(reverse("my_account")).content.decode()
    assert "Not specified (defaults to Postpaid)" in page

    organization_default_billing_type_set(billing_type="PREPAID", changed_by=None)
    page = client.get(reverse("my_account")).content.decode()
    assert "Not specified (defaults to Prepaid)" in page


def test_changing_the_default_leaves_individually_set_developers_alone(developer, other_developer):
    billing_type_set(
        account=other_developer.billing_account,
        billing_type="POSTPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    affected = organization_default_billing_type_set(billing_type="PREPAID", changed_by=None)
    assert affected == 1
    effective = {p.email: p.effective_billing_type for p in developers_list()}
    assert effective == {developer.email: "PREPAID", other_developer.email: "POSTPAID"}
    history = BillingTypeChange.objects.get()
    assert history.billing_account == developer.billing_account
    assert (history.old_billing_type, history.new_billing_type) == ("POSTPAID", "PREPAID")
    assert history.source == BillingTypeChange.Source.ORGANIZATION_DEFAULT


def test_setting_the_same_default_again_changes_nothing(developer):
    assert organization_default_billing_type_set(billing_type="POSTPAID", changed_by=None) == 0
    assert not BillingTypeChange.objects.exists()
    assert not AuditLogEntry.objects.exists()
    assert not developer.billing_account.wallets.exists()


def test_unknown_billing_type_is_refused_by_the_services(developer):
    with pytest.raises(BillingError, match="Unknown billing type 'FREE'"):
        billing_type_set(
            account=developer.billing_account,
            billing_type="FREE",
            changed_by=None,
            source=BillingTypeChange.Source.ADMIN,
        )
    with pytest.raises(BillingError, match="Unknown billing type"):
        organization_default_billing_type_set(billing_type="prepaid", changed_by=None)
    developer.billing_account.refresh_from_db()
    assert developer.billing_account.billing_type == ""


def test_stale_confirmation_is_a_conflict(developer, portal_admin):
    account = developer.billing_account
    billing_type_set(
        account=account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.API,
    )
    with pytest.raises(BillingTypeConflict):
        billing_type_set(
            account=account,
            billing_type="POSTPAID",
            changed_by=portal_admin,
            source=BillingTypeChange.Source.ADMIN,
            expected_current="",
        )
    account.refresh_from_db()
    assert account.billing_type == "PREPAID"


def test_admin_flow_choose_confirm_save(client, developer, portal_admin):
    client.force_login(portal_admin)
    url = reverse("billing_type_tab", args=[developer.pk])

    tab = client.get(url).content.decode()
    assert "Not specified (defaults to Postpaid)" in tab
    assert "No changes yet." in tab

    confirm = client.post(url, {"billing_type": "PREPAID"})
    text = confirm.content.decode()
    assert "Set the billing type to Prepaid?" in text
    assert "to the extent of their prepaid top-up amount" in text
    assert "Save changes" in text
    developer.billing_account.refresh_from_db()
    assert developer.billing_account.billing_type == "", "the confirmation page must not save"

    saved = client.post(
        url, {"billing_type": "PREPAID", "expected_current": "", "confirm": "1"}, follow=True
    )
    assert (
        f"The billing type of {developer.get_full_name()} is now Prepaid." in saved.content.decode()
    )
    developer.billing_account.refresh_from_db()
    assert developer.billing_account.billing_type == BillingType.PREPAID

    change = BillingTypeChange.objects.get()
    assert (change.old_billing_type, change.new_billing_type, change.changed_by) == (
        "POSTPAID",
        "PREPAID",
        portal_admin,
    )
    assert change.source == BillingTypeChange.Source.ADMIN
    history = client.get(url).content.decode()
    assert portal_admin.email in history and "Admin" in history
    audit = AuditLogEntry.objects.get(action="billing_type.set")
    assert audit.actor == portal_admin and audit.target_user == developer

    # The other direction states what happens to the prepaid balance.
    text = client.post(url, {"billing_type": "POSTPAID"}).content.decode()
    assert "reported as a credit transaction" in text


@pytest.mark.parametrize(
    "data, message",
    [
        ({}, "Choose Postpaid or Prepaid."),
        ({"billing_type": "FREE"}, "“FREE” is not a billing type"),
        ({"billing_type": "prepaid"}, "“prepaid” is not a billing type"),
    ],
)
def test_invalid_choice_shows_a_message_and_changes_nothing(
    client, developer, portal_admin, data, message
):
    client.force_login(portal_admin)
    url = reverse("billing_type_tab", args=[developer.pk])
    response = client.post(url, data)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert message in response.content.decode()
    response = client.post(url, {**data, "confirm": "1"}, follow=True)
    assert "Nothing was changed." in response.content.decode()
    developer.billing_account.refresh_from_db()
    assert developer.billing_account.billing_type == ""
    assert not BillingTypeChange.objects.exists()


def test_confirmation_after_someone_else_changed_it_is_refused(client, developer, portal_admin):
    client.force_login(portal_admin)
    url = reverse("billing_type_tab", args=[developer.pk])
    billing_type_set(
        account=developer.billing_account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.API,
    )
    response = client.post(
        url, {"billing_type": "POSTPAID", "expected_current": "", "confirm": "1"}, follow=True
    )
    assert "changed by someone else meanwhile" in response.content.decode()
    developer.billing_account.refresh_from_db()
    assert developer.billing_account.billing_type == "PREPAID"


def test_tampered_developer_id_changes_nobody(client, developer, portal_admin):
    client.force_login(portal_admin)
    response = client.post(
        reverse("billing_type_tab", args=[developer.pk + 1000]),
        {"billing_type": "PREPAID", "expected_current": "", "confirm": "1"},
    )
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert not BillingTypeChange.objects.exists()


def test_developer_cannot_change_own_billing_type(client, developer):
    client.force_login(developer)
    response = client.post(
        reverse("my_account"), {"billing_type": "PREPAID", "legal_company_name": "X"}
    )
    assert response.status_code == HTTPStatus.FOUND
    developer.billing_account.refresh_from_db()
    assert developer.billing_account.billing_type == ""
    assert developer.billing_account.legal_company_name == "X"
    page = client.get(reverse("my_account")).content.decode()
    assert 'name="billing_type"' not in page


def test_settings_page_counts_who_each_choice_affects(
    client, portal_admin, developer, other_developer
):
    billing_type_set(
        account=other_developer.billing_account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    counts = billing_type_counts()
    assert (counts.following_default, counts.prepaid, counts.postpaid) == (1, 1, 0)
    client.force_login(portal_admin)
    page = client.get(reverse("monetization_settings")).content.decode()
    assert "With <strong>Prepaid</strong> as the default: 2 developers prepaid, 0 postpaid." in page
    assert (
        "With <strong>Postpaid</strong> as the default: 1 developer prepaid, 1 postpaid (current)."
        in page
    )

    confirm = client.post(
        reverse("monetization_settings"),
        {"section": "billing_type", "default_billing_type": "PREPAID"},
    ).content.decode()
    assert "Make Prepaid the default billing type?" in confirm
    assert "1 developer</strong> without a billing type of their own follows the default" in confirm
    assert organization_settings_get().default_billing_type == "POSTPAID", "confirm first"

    response = client.post(
        reverse("monetization_settings"),
        {"section": "billing_type", "default_billing_type": "PREPAID", "confirm": "1"},
        follow=True,
    )
    assert (
        "The default billing type is now Prepaid. 1 developer without a billing type of their "
        "own now follows it." in response.content.decode()
    )
    assert AuditLogEntry.objects.get(action="organization.default_billing_type.set").data == {
        "old": "POSTPAID",
        "new": "PREPAID",
        "developers_affected": 1,
    }


def test_saving_the_default_unchanged_says_nothing_changed(client, portal_admin):
    client.force_login(portal_admin)
    response = client.post(
        reverse("monetization_settings"),
        {"section": "billing_type", "default_billing_type": "POSTPAID", "confirm": "1"},
        follow=True,
    )
    assert "Nothing changed: the default billing type is already Postpaid." in (
        response.content.decode()
    )
    assert not AuditLogEntry.objects.filter(action="organization.default_billing_type.set")


def test_choosing_the_type_a_developer_already_has_asks_nothing(client, developer, portal_admin):
    billing_type_set(
        account=developer.billing_account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    client.force_login(portal_admin)
    url = reverse("billing_type_tab", args=[developer.pk])
    response = client.post(url, {"billing_type": "PREPAID"}, follow=True).content.decode()
    assert "Nothing changed:" in response and "Save changes" not in response


def test_fixing_a_developer_to_the_default_they_follow_says_no_money_moves(
    client, developer, portal_admin
):
    client.force_login(portal_admin)
    url = reverse("billing_type_tab", args=[developer.pk])
    text = client.post(url, {"billing_type": "POSTPAID"}).content.decode()
    assert "already follows the organisation default" in text and "no money moves" in text
    assert "reported as a credit transaction" not in text


def test_settings_page_refuses_unknown_default(client, portal_admin):
    client.force_login(portal_admin)
    response = client.post(
        reverse("monetization_settings"),
        {"section": "billing_type", "default_billing_type": "NONE"},
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "“NONE” is not a billing type" in response.content.decode()

    assert organization_settings_get().default_billing_type == "POSTPAID"


@pytest.mark.parametrize(
    "url_name, data",
    [
        ("billing_type_tab", {"billing_type": "PREPAID", "expected_current": "", "confirm": "1"}),
        ("monetization_settings", {"section": "billing_type", "default_billing_type": "PREPAID"}),
        ("my_account", {"legal_company_name": "Forged Ltd"}),
        (
            "people_balance",
            {
                "direction": "increase",
                "amount": "5",
                "currency": "USD",
                "reason": "x",
                "confirm": "1",
            },
        ),
    ],
)
def test_csrf_is_enforced_on_every_form(developer, portal_admin, url_name, data):
    client = Client(enforce_csrf_checks=True)
    client.force_login(developer if url_name == "my_account" else portal_admin)
    args = [developer.pk] if url_name in ("billing_type_tab", "people_balance") else []
    response = client.post(reverse(url_name, args=args), data)
    assert response.status_code == HTTPStatus.FORBIDDEN
    developer.billing_account.refresh_from_db()
    assert developer.billing_account.billing_type == ""
    assert developer.billing_account.legal_company_name == ""
    assert not AuditLogEntry.objects.exists()
    assert not developer.billing_account.wallets.exists()
