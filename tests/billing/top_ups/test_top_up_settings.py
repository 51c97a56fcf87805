from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.urls import reverse

from billing.billing_accounts.selectors import organization_settings_get
from billing.models import AuditLogEntry, AutoRecharge, TopUp, TopUpLimit
from billing.notifications.admins import notify_admins
from billing.web.settings import SECTIONS
from tests.conftest import NANOS_PER_UNIT
from tests.factories import AdminFactory, DeveloperFactory

pytestmark = pytest.mark.django_db


def form_data(**overrides):
    data = {
        "section": "top_ups",
        "top_up_wait_seconds": "120",
        "prepaid_grace": "2.50",
        "notification_email": "billing@example.com",
        "limits-TOTAL_FORMS": "2",
        "limits-INITIAL_FORMS": "1",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "50",
        "limits-0-currency": "USD",
        "limits-0-minimum": "5",
        "limits-0-maximum": "500",
        "limits-0-default": "10",
        "limits-1-currency": "eur",
        "limits-1-minimum": "10",
        "limits-1-maximum": "300",
        "limits-1-default": "25.5",
    }
    data.update(overrides)
    return data


def test_out_of_the_box_limits_are_usd_5_500_10():
    limit = TopUpLimit.objects.get()
    assert (limit.currency, limit.minimum, limit.maximum, limit.default) == (
        "USD",
        5 * NANOS_PER_UNIT,
        500 * NANOS_PER_UNIT,
        10 * NANOS_PER_UNIT,
    )
    assert organization_settings_get().top_up_wait_seconds == 300


def test_admin_saves_add_credit_settings_and_a_new_currency(client, portal_admin):
    client.force_login(portal_admin)
    page = client.get(reverse("monetization_settings")).content.decode()
    assert 'value="USD"' in page and "Save Add credit settings" in page
    response = client.post(reverse("monetization_settings"), form_data(), follow=True)
    assert "The Add credit settings have been saved." in response.content.decode()
    org = organization_settings_get()
    assert (org.top_up_wait_seconds, org.prepaid_grace_nanos, org.notification_email) == (
        120,
        2_500_000_000,
        "billing@example.com",
    )
    eur = TopUpLimit.objects.get(currency="EUR")
    assert (eur.minimum, eur.maximum, eur.default) == (
        10 * NANOS_PER_UNIT,
        300 * NANOS_PER_UNIT,
        25_500_000_000,
    )
    audit = AuditLogEntry.objects.get(action="organization.top_up_settings.set")
    assert audit.actor == portal_admin and audit.data["before"]["top_up_wait_seconds"] == 300


def test_removing_a_currency_is_confirmed_first_then_stops_add_credit_in_it(
    client, portal_admin, developer, django_capture_on_commit_callbacks
):
    client.force_login(portal_admin)
    client.post(reverse("monetization_settings"), form_data())
    AutoRecharge.objects.create(
        billing_account=developer.billing_account,
        currency="EUR",
        enabled=True,
        threshold=10 * NANOS_PER_UNIT,
        amount=20 * NANOS_PER_UNIT,
    )
    removal = form_data(
        **{"limits-INITIAL_FORMS": "2", "limits-1-DELETE": "on", "top_up_wait_seconds": "60"}
    )
    response = client.post(reverse("monetization_settings"), removal)
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "Stop Add credit in EUR?" in page
    assert "developers can no longer add credit in EUR" in page
    assert "auto-recharge stops for the <strong>1 developer</strong> who has it on" in page
    assert "Remove and save" in page and "Nothing has been saved yet." in page
    # Nothing changed until confirmed, not even the other settings on the form.
    assert list(TopUpLimit.objects.values_list("currency", flat=True)) == ["EUR", "USD"]
    assert organization_settings_get().top_up_wait_seconds == 120

    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    assert hidden["limits-1-DELETE"] == "on" and hidden["confirm"] == "1"
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(reverse("monetization_settings"), hidden, follow=True)
    assert "The Add credit settings have been saved." in done.content.decode()
    assert list(TopUpLimit.objects.values_list("currency", flat=True)) == ["USD"]
    assert organization_settings_get().top_up_wait_seconds == 60
    # As the confirmation said: auto-recharge in EUR stops, and offering EUR again later does
    # not quietly start charging cards.
    recharge = AutoRecharge.objects.get()
    assert not recharge.enabled
    assert recharge.disabled_reason == (
        "Switched off because adding credit in EUR is no longer offered."
    )


def test_saving_without_removing_a_currency_asks_nothing(client, portal_admin):
    client.force_login(portal_admin)
    blank_row = {f"limits-1-{name}": "" for name in ("currency", "minimum", "maximum", "default")}
    response = client.post(reverse("monetization_settings"), form_data(**blank_row), follow=True)
    assert "The Add credit settings have been saved." in response.content.decode()
    assert organization_settings_get().top_up_wait_seconds == 120


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"limits-1-default": "400"}, "the default must lie between the minimum and the maximum"),
        ({"limits-1-currency": "EURO"}, "Ensure this value has at most 3 characters"),
        ({"limits-1-currency": "ZZZ"}, "not a known ISO 4217 currency"),
        ({"limits-1-minimum": "-1"}, "Minimum must be greater than zero"),
        ({"limits-1-maximum": "lots"}, "is not an amount"),
        ({"top_up_wait_seconds": "-5"}, "greater than or equal to 0"),
        ({"prepaid_grace": "x"}, "is not an amount"),
        ({"prepaid_grace": "-5"}, "The grace cannot be negative"),
        ({"limits-1-currency": "usd"}, "USD is listed twice"),
        (  # a limit is an amount to pay: Stripe takes KWD in steps of 0.010
            {"limits-1-currency": "KWD", "limits-1-default": "25.505"},
            "Default: KWD amounts must be a multiple of 0.010: KWD25.505 cannot be charged",
        ),
        ({"limits-0-minimum": "5.001"}, "Minimum: USD amounts must be a multiple of 0.01"),
        (  # ISO gives LYD three decimals; Stripe's three-decimal currencies do not include it
            {"limits-1-currency": "LYD"},
            "Stripe does not take payments in LYD: its amounts have 3 decimal places, and "
            "the only three-decimal currencies Stripe takes are BHD, JOD, KWD, OMR, TND.",
        ),
        (
            {"limits-1-currency": "clf"},
            "Stripe does not take payments in CLF: its amounts have 4 decimal places",
        ),
        ({"limits-1-currency": "UYW"}, "Stripe does not take payments in UYW"),
        ({"limits-0-minimum": "0.10"}, "Minimum: Stripe charges at least $0.50 in USD"),
        (
            {"limits-1-currency": "JPY", "limits-1-minimum": "10", "limits-1-default": "100"},
            "Minimum: Stripe charges at least ¥50 in JPY",
        ),
    ],
)
def test_bad_settings_are_refused_and_nothing_changes(client, portal_admin, overrides, message):
    client.force_login(portal_admin)
    response = client.post(reverse("monetization_settings"), form_data(**overrides))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert message in response.content.decode()
    assert 'correct what is marked in <a href="#section-top_ups">Add credit</a>' in (
        response.content.decode()
    )
    assert list(TopUpLimit.objects.values_list("currency", flat=True)) == ["USD"]
    assert organization_settings_get().top_up_wait_seconds == 300


def test_each_section_of_the_settings_page_can_be_linked_to(client, portal_admin):
    client.force_login(portal_admin)
    page = client.get(reverse("monetization_settings")).content.decode()

    for key, title in SECTIONS.items():
        assert f'<section class="card" id="section-{key}">\n  <h2>{title}</h2>' in page


@pytest.mark.parametrize(
    "role, expected",
    [("admin_without_permission", HTTPStatus.FORBIDDEN), ("portal_admin", HTTPStatus.OK)],
)
def test_add_credit_log_needs_its_permission(client, request, developer, role, expected):
    TopUp.objects.create(
        billing_account=developer.billing_account, currency="USD", amount=20 * NANOS_PER_UNIT
    )
    client.force_login(request.getfixturevalue(role))
    response = client.get(reverse("admin:billing_topup_changelist"))
    assert response.status_code == expected
    if expected == HTTPStatus.OK:
        page = response.content.decode()
        assert developer.email in page and "$20.00" in page and "Pending" in page


def test_the_admin_calls_it_the_add_credit_log(client, portal_admin):
    client.force_login(portal_admin)

    index = client.get(reverse("admin:index")).content.decode()
    changelist = client.get(reverse("admin:billing_topup_changelist")).content.decode()

    log = reverse("admin:billing_topup_changelist")
    assert f'<a href="{log}">Add credit log</a>' in index
    assert "Top ups" not in index
    assert "<title>Select top-up to view |" in changelist


def test_add_credit_log_is_closed_to_developers_and_anonymous(client, developer):
    url = reverse("admin:billing_topup_changelist")
    assert client.get(url).status_code == HTTPStatus.FOUND
    client.force_login(developer)
    response = client.get(url)
    assert response.status_code == HTTPStatus.FOUND and "/admin/login/" in response["Location"]


def test_add_credit_log_shows_a_top_up_as_money_read_only(client, developer, portal_admin):
    top_up = TopUp.objects.create(
        billing_account=developer.billing_account,
        currency="USD",
        amount=20_500_000_000,
        refunded_amount=5 * NANOS_PER_UNIT,
        state=TopUp.State.REFUNDED,
    )
    client.force_login(portal_admin)
    response = client.get(reverse("admin:billing_topup_change", args=[top_up.pk]))
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "$20.50" in page and "$5.00" in page and developer.email in page
    assert "20500000000" not in page and "20,500,000,000" not in page
    assert "5000000000" not in page and "5,000,000,000" not in page
    assert '<input type="number"' not in page and 'name="amount"' not in page
    # Viewing only: a POST cannot change the amount.
    client.post(reverse("admin:billing_topup_change", args=[top_up.pk]), {"amount": "1"})
    top_up.refresh_from_db()
    assert top_up.amount == 20_500_000_000


def test_add_credit_log_shows_refunds_that_failed_and_were_given_back(
    client, developer, portal_admin
):
    """$20.00 refunded of which $5.00 failed at Stripe and was given back: the log must not
    read as if all $20.00 had gone back to the card."""
    top_up = TopUp.objects.create(
        billing_account=developer.billing_account,
        currency="USD",
        amount=20 * NANOS_PER_UNIT,
        refunded_amount=20 * NANOS_PER_UNIT,
        refund_failed_amount=5 * NANOS_PER_UNIT,
        state=TopUp.State.SUCCEEDED,
    )
    client.force_login(portal_admin)

    page = client.get(reverse("admin:billing_topup_change", args=[top_up.pk])).content.decode()

    assert "Refunds failed (given back)" in page
    assert "$5.00" in page


def test_without_a_notification_address_the_add_credit_log_readers_are_emailed(settings):
    """Issue 4: an administrator is emailed when crediting fails. With neither the settings
    page's address nor ADMINS, that is everyone who may read the Add credit log."""

    settings.ADMINS = []
    group_admin = AdminFactory(portal_admin=True)
    direct = AdminFactory()
    direct.user_permissions.add(Permission.objects.get(codename="view_add_credit_log"))
    superuser = AdminFactory(is_superuser=True)
    AdminFactory()  # staff without the permission
    DeveloperFactory()
    AdminFactory(portal_admin=True, is_active=False)

    notify_admins("Crediting failed", "details")

    [email] = mail.outbox
    assert sorted(email.to) == sorted([group_admin.email, direct.email, superuser.email])
    assert email.subject == "[Developer portal] Crediting failed"

    mail.outbox.clear()
    organization_settings_get().__class__.objects.update(notification_email="ops@example.com")
    notify_admins("Crediting failed", "details")
    assert mail.outbox[0].to == ["ops@example.com"]
