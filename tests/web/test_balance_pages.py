from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.auto_recharge.settings import auto_recharge_configure
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_adjust, wallet_credit, wallet_debit
from billing.models import (
    AuditLogEntry,
    AutoRecharge,
    LedgerEntry,
    OrganizationSettings,
    RechargeAttempt,
    TopUpLimit,
    Wallet,
)
from billing.money import money_parse
from billing.payments.cards import card_save
from tests.conftest import usd
from tests.factories import AdminFactory, auto_recharge_on

pytestmark = pytest.mark.django_db


@pytest.fixture
def balance_viewer(db):
    """An admin who may look at balances but not adjust them."""
    admin = AdminFactory()
    admin.user_permissions.add(Permission.objects.get(codename="view_any_prepaid_balance"))
    return admin


def test_prepaid_developer_sees_wallets_and_history(client, prepaid_developer):
    account = prepaid_developer.billing_account
    wallet_credit(account=account, money=usd("150.5"), transaction_id="t1", actor=Actor.system())
    wallet_credit(
        account=account,
        money=money_parse("10000.6", "INR"),
        transaction_id="t2",
        actor=Actor.system(),
    )
    wallet_debit(account=account, money=usd("0.25"), transaction_id="d1", actor=Actor.system())
    client.force_login(prepaid_developer)
    page = client.get(reverse("my_balance")).content.decode()
    assert "$150.25" in page and "₹10,000.60" in page
    assert "-$0.25" in page and "+$150.50" in page
    assert "Postpaid" not in page


def test_negative_balance_is_shown_plainly(client, prepaid_developer):
    account = prepaid_developer.billing_account
    wallet_credit(account=account, money=usd("1"), transaction_id="t1", actor=Actor.system())

    OrganizationSettings.objects.update(prepaid_grace_nanos=5 * 10**9)  # within the grace
    wallet_adjust(account=account, change=-usd("3.5"), actor=Actor.system(), reason="late usage")
    client.force_login(prepaid_developer)
    page = client.get(reverse("my_balance")).content.decode()
    assert "-$2.50" in page and "negative: taken from the next top-up" in page


def test_developers_see_that_an_administrator_adjusted_not_who(
    client, prepaid_developer, portal_admin, balance_viewer
):

    wallet_adjust(
        account=prepaid_developer.billing_account,
        change=usd("7"),
        actor=Actor.for_user(portal_admin),
        reason="goodwill",
    )
    client.force_login(prepaid_developer)
    own = client.get(reverse("my_balance")).content.decode()
    assert "goodwill" in own and "by an administrator" in own
    assert portal_admin.email not in own

    client.force_login(balance_viewer)
    admin_page = client.get(reverse("people_balance", args=[prepaid_developer.pk]))
    assert f"by {portal_admin}" in admin_page.content.decode()


def test_history_filter_and_pager_ask_the_balance_page_after_a_failed_form(
    client, prepaid_developer
):
    account = prepaid_developer.billing_account
    for n in range(25):  # two pages
        wallet_credit(account=account, money=usd("1"), transaction_id=f"t{n}", actor=Actor.system())
    client.force_login(prepaid_developer)

    failed = client.post(
        reverse("auto_recharge_settings", args=["USD"]),
        {"recharge-USD-enabled": "on", "recharge-USD-threshold": "x"},
    )

    assert failed.status_code == HTTPStatus.BAD_REQUEST
    page = failed.content.decode()
    balance = reverse("my_balance")
    assert f'hx-get="{balance}" hx-target="#history"' in page  # not the failed form's address
    assert f'href="{balance}?kind=&amp;page=2"' in page
    # Filtering starts again at the first page of the filtered list.
    filtered = client.get(
        balance, {"kind": "CREDIT"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="history"
    )
    assert "Page 1 of 2" in filtered.content.decode()


def test_postpaid_developer_is_told_why_there_is_no_balance(client, developer):
    client.force_login(developer)
    response = client.get(reverse("my_balance"))
    assert "You are on <strong>Postpaid</strong> billing" in response.content.decode()
    assert 'data-testid="wallets"' not in response.content.decode()  # no empty USD row


def test_history_filter_and_htmx_paging(client, prepaid_developer):
    account = prepaid_developer.billing_account
    for n in range(25):
        wallet_credit(account=account, money=usd("1"), transaction_id=f"t{n}", actor=Actor.system())
    wallet_debit(account=account, money=usd("2"), transaction_id="d1", actor=Actor.system())
    client.force_login(prepaid_developer)
    first = client.get(reverse("my_balance")).content.decode()
    assert "Page 1 of 2" in first
    partial = client.get(
        reverse("my_balance"), {"page": 2}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="history"
    ).content.decode()
    assert "<html" not in partial and "Page 2 of 2" in partial
    usage = client.get(reverse("my_balance"), {"kind": "USAGE"}).content.decode()
    assert usage.count('<td data-label="What">Usage</td>') == 1
    assert "Top-up</td>" not in usage


def test_balance_page_query_count_does_not_grow_with_history(client, prepaid_developer):
    account = prepaid_developer.billing_account
    client.force_login(prepaid_developer)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("my_balance")).status_code == HTTPStatus.OK
        return len(ctx.captured_queries)

    wallet_credit(account=account, money=usd("1"), transaction_id="first", actor=Actor.system())
    few = queries()
    for n in range(60):
        wallet_credit(account=account, money=usd("1"), transaction_id=f"t{n}", actor=Actor.system())
    assert queries() == few


def test_admin_adjusts_through_a_confirmation_once(client, portal_admin, prepaid_developer):
    account = prepaid_developer.billing_account
    wallet_credit(account=account, money=usd("20"), transaction_id="t1", actor=Actor.system())
    client.force_login(portal_admin)
    url = reverse("people_balance", args=[prepaid_developer.pk])
    data = {
        "direction": "decrease",
        "amount": "5.25",
        "currency": "usd",
        "reason": "under-charged in May",
    }
    confirm = client.post(url, data).content.decode()
    assert "Decrease the USD balance by $5.25?" in confirm and "$14.75" in confirm
    assert Wallet.objects.get().balance == 20 * 10**9, "the confirmation page must not save"

    transaction_id = re.search(r'name="transaction_id" value="([^"]+)"', confirm).group(1)
    save = {**data, "currency": "USD", "transaction_id": transaction_id, "confirm": "1"}
    done = client.post(url, save, follow=True).content.decode()
    assert "the USD balance is now $14.75" in done
    again = client.post(url, save, follow=True).content.decode()
    assert "already saved" in again
    assert Wallet.objects.get().balance == 14_750_000_000
    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.ADJUSTMENT)
    assert entry.actor_user == portal_admin and entry.memo == "under-charged in May"
    audit = AuditLogEntry.objects.get(action="balance.adjust")
    assert audit.actor == portal_admin and audit.target_user == prepaid_developer


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"direction": "increase", "amount": "abc", "currency": "USD", "reason": "x"},
            "is not an amount",
        ),
        (
            {"direction": "increase", "amount": "0", "currency": "USD", "reason": "x"},
            "greater than zero",
        ),
        (
            {"direction": "increase", "amount": "5", "currency": "ZZZ", "reason": "x"},
            "“ZZZ” cannot be adjusted here",
        ),
        (
            {"direction": "increase", "amount": "5", "currency": "USD", "reason": "  "},
            "This field is required",
        ),
        (
            {"direction": "sideways", "amount": "5", "currency": "USD", "reason": "x"},
            "Select a valid choice",
        ),
        (
            # Adjust accepted $0.001 while Add credit refused it: one rule for people's amounts.
            {"direction": "increase", "amount": "0.001", "currency": "USD", "reason": "x"},
            "USD amounts take at most 2 decimal places.",
        ),
    ],
)
def test_bad_adjustments_are_refused_with_a_message(
    client, portal_admin, prepaid_developer, data, message
):
    client.force_login(portal_admin)
    url = reverse("people_balance", args=[prepaid_developer.pk])
    for extra in ({}, {"confirm": "1", "transaction_id": "adjustment:x"}):
        response = client.post(url, {**data, **extra})
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert message in response.content.decode()
        assert "The adjustment was not saved: see Adjust balance below." in (
            response.content.decode()
        )
    assert (
        not LedgerEntry.objects.exists()
        and not AuditLogEntry.objects.filter(action="balance.adjust").exists()
    )


def test_viewer_without_adjust_permission_sees_no_form_and_gets_403(
    client, balance_viewer, prepaid_developer
):
    client.force_login(balance_viewer)
    url = reverse("people_balance", args=[prepaid_developer.pk])
    page = client.get(url).content.decode()
    assert "Adjust balance" not in page
    data = {
        "direction": "increase",
        "amount": "5",
        "currency": "USD",
        "reason": "x",
        "confirm": "1",
    }
    assert client.post(url, data).status_code == HTTPStatus.FORBIDDEN
    assert not Wallet.objects.exists()
    # The tab shows for viewers; the Billing type tab does not.
    people = client.get(reverse("people_account", args=[prepaid_developer.pk])).content.decode()
    assert url in people and reverse("billing_type_tab", args=[prepaid_developer.pk]) not in people


def test_back_from_saving_a_card_the_card_box_asks_again_for_a_minute_at_most(
    client, prepaid_developer
):
    client.force_login(prepaid_developer)
    url = reverse("my_balance")
    first = client.get(url, {"card": "saving"}).content.decode()
    assert "card=saving&amp;left=29" in first and 'hx-trigger="load delay:2s"' in first
    assert "left=" not in client.get(url, {"card": "saving", "left": "0"}).content.decode()
    assert "left=" not in client.get(url, {"card": "saving", "left": "x"}).content.decode()
    assert (
        "card=saving&amp;left=29"
        in client.get(url, {"card": "saving", "left": "999"}).content.decode()
    )
    assert "left=" not in client.get(url).content.decode()


def test_an_adjustment_below_the_prepaid_grace_is_refused_before_the_confirmation(
    client, portal_admin, prepaid_developer
):
    account = prepaid_developer.billing_account
    wallet_credit(account=account, money=usd("20"), transaction_id="t1", actor=Actor.system())
    client.force_login(portal_admin)
    url = reverse("people_balance", args=[prepaid_developer.pk])
    data = {"direction": "decrease", "amount": "25", "currency": "USD", "reason": "under-charged"}

    for extra in ({}, {"confirm": "1", "transaction_id": "adjustment:below-grace"}):
        response = client.post(url, {**data, **extra}, follow=True)
        page = response.content.decode()
        assert "can take off at most $20.00" in page
        assert "Nothing was changed" in page or response.status_code == HTTPStatus.BAD_REQUEST

    assert Wallet.objects.get().balance == 20 * 10**9
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADJUSTMENT).exists()
    assert not AuditLogEntry.objects.filter(action="balance.adjust").exists()
    # Down to zero is allowed.
    data["amount"] = "20"
    client.post(url, {**data, "confirm": "1", "transaction_id": "adjustment:to-zero"})
    assert Wallet.objects.get().balance == 0


def test_an_adjustment_past_the_largest_balance_is_refused_before_the_confirmation(
    client, portal_admin, prepaid_developer
):
    """A wallet holds at most 1,000,000,000 of a currency; going past it was a 500."""
    account = prepaid_developer.billing_account
    almost_full = usd("999999999")
    wallet_credit(account=account, money=almost_full, transaction_id="t1", actor=Actor.system())
    client.force_login(portal_admin)
    url = reverse("people_balance", args=[prepaid_developer.pk])
    data = {"direction": "increase", "amount": "2", "currency": "USD", "reason": "over-charged"}

    for extra in ({}, {"confirm": "1", "transaction_id": "adjustment:too-much"}):
        response = client.post(url, {**data, **extra}, follow=True)
        page = response.content.decode()
        assert "A wallet holds at most $1,000,000,000.00" in page
        assert "so an adjustment can add at most $1.00" in page
        assert "Nothing was changed" in page or response.status_code == HTTPStatus.BAD_REQUEST

    assert Wallet.objects.get().balance == almost_full.nanos
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADJUSTMENT).exists()
    assert not AuditLogEntry.objects.filter(action="balance.adjust").exists()
    # Up to the largest balance is allowed.
    client.post(url, {**data, "amount": "1", "confirm": "1", "transaction_id": "adjustment:1"})
    assert Wallet.objects.get().balance == usd("1000000000").nanos


def _adjust_confirmation(client, developer, direction: str, amount: str) -> str:
    url = reverse("people_balance", args=[developer.pk])
    data = {"direction": direction, "amount": amount, "currency": "USD", "reason": "usage fix"}
    return client.post(url, data).content.decode()


def _confirm_adjustment(client, developer, page: str, direction: str, amount: str) -> None:
    """Save the adjustment the confirmation `page` shows, as its Save button does."""

    transaction_id = re.search(r'name="transaction_id" value="([^"]+)"', page).group(1)
    data = {"direction": direction, "amount": amount, "currency": "USD", "reason": "usage fix"}
    client.post(
        reverse("people_balance", args=[developer.pk]),
        {**data, "transaction_id": transaction_id, "confirm": "1"},
    )


def test_adjust_confirmation_warns_when_it_would_charge_the_saved_card(
    client, portal_admin, prepaid_developer, django_capture_on_commit_callbacks
):

    account = prepaid_developer.billing_account
    wallet_credit(account=account, money=usd("30"), transaction_id="t1", actor=Actor.system())
    card_save(account=account, payment_method_id="pm_offline_visa_4242", brand="visa", last4="4242")
    account.refresh_from_db()

    def configure(enabled: bool, mode: str, amount: str) -> None:
        auto_recharge_configure(
            account=account,
            currency="USD",
            enabled=enabled,
            threshold=usd("20"),
            mode=mode,
            amount=usd(amount),
            monthly_cap=None,
            changed_by=prepaid_developer,
        )

    configure(True, "FIXED", "50")
    client.force_login(portal_admin)
    # 30 - 10 = 20 is not below the threshold: auto-recharge charges only below it.
    assert "recharge-warning" not in _adjust_confirmation(
        client, prepaid_developer, "decrease", "10"
    )
    page = _adjust_confirmation(client, prepaid_developer, "decrease", "15")
    assert "Auto-recharge is on for USD with a threshold of $20.00." in page
    assert "saved card (Visa •••• 4242) <strong>$50.00</strong>" in page
    configure(True, "TARGET", "60")
    page = _adjust_confirmation(client, prepaid_developer, "decrease", "17.50")
    assert "<strong>$47.50</strong>" in page  # up to the target from 12.50
    configure(False, "FIXED", "50")
    assert "recharge-warning" not in _adjust_confirmation(
        client, prepaid_developer, "decrease", "15"
    )

    # The warning tells the truth: confirming does charge the card.
    configure(True, "FIXED", "50")
    page = _adjust_confirmation(client, prepaid_developer, "decrease", "15")
    with django_capture_on_commit_callbacks(execute=True):
        _confirm_adjustment(client, prepaid_developer, page, "decrease", "15")
    assert Wallet.objects.get().balance == 65 * 10**9  # 30 - 15 + 50


def test_adjust_confirmation_does_not_warn_of_a_charge_while_auto_recharge_waits_for_a_rise(
    client, portal_admin, prepaid_developer, django_capture_on_commit_callbacks
):
    """A fixed $10 recharge left $40 below the $50 threshold: the next charge waits until the
    balance has been back at the threshold, so a further decrease charges nothing."""

    account = prepaid_developer.billing_account
    wallet_credit(account=account, money=usd("30"), transaction_id="t1", actor=Actor.system())
    with django_capture_on_commit_callbacks(execute=True):
        auto_recharge_on(account, threshold="50", amount="10")
    assert Wallet.objects.get().balance == 40 * 10**9  # charged once, still below
    client.force_login(portal_admin)

    page = _adjust_confirmation(client, prepaid_developer, "decrease", "5")

    assert "recharge-warning" not in page
    with django_capture_on_commit_callbacks(execute=True):
        _confirm_adjustment(client, prepaid_developer, page, "decrease", "5")
    assert Wallet.objects.get().balance == 35 * 10**9  # no charge, as the page said


def test_adjust_confirmation_does_not_warn_of_a_charge_the_runaway_guard_stops(
    client, portal_admin, prepaid_developer, django_capture_on_commit_callbacks
):
    """Four recharges in ten minutes: the next one is not charged, the runaway guard switches
    auto-recharge off instead, so the page must not say confirming charges the card."""

    account = prepaid_developer.billing_account
    wallet_credit(account=account, money=usd("30"), transaction_id="t1", actor=Actor.system())
    auto_recharge_on(account, threshold="20", amount="10")
    for n, amount in enumerate(["15", "10", "10", "10"]):  # each falls to 15, recharged to 25
        with django_capture_on_commit_callbacks(execute=True):
            wallet_debit(
                account=account, money=usd(amount), transaction_id=f"use{n}", actor=Actor.system()
            )
    assert RechargeAttempt.objects.filter(state="SUCCEEDED").count() == 4
    client.force_login(portal_admin)

    page = _adjust_confirmation(client, prepaid_developer, "decrease", "10")

    assert "recharge-warning" not in page
    with django_capture_on_commit_callbacks(execute=True):
        _confirm_adjustment(client, prepaid_developer, page, "decrease", "10")
    assert Wallet.objects.get().balance == 15 * 10**9  # not charged: switched off instead
    assert not AutoRecharge.objects.get().enabled


def test_adjust_currency_is_chosen_from_offered_currencies_and_existing_wallets(
    client, portal_admin, prepaid_developer
):

    account = prepaid_developer.billing_account
    TopUpLimit.objects.create(currency="EUR", minimum=10**9, maximum=10**11, default=10**10)
    # A balance in a currency no longer offered can still be corrected.
    wallet_credit(
        account=account, money=money_parse("7", "GBP"), transaction_id="t1", actor=Actor.system()
    )
    client.force_login(portal_admin)
    url = reverse("people_balance", args=[prepaid_developer.pk])
    page = client.get(url).content.decode()
    assert '<select name="currency"' in page
    select = page[page.index('<select name="currency"') :]
    select = select[: select.index("</select>")]
    assert re.findall(r'<option value="([A-Z]*)"', select) == ["", "EUR", "GBP", "USD"]
    assert '<option value="USD" selected>' in page

    data = {"direction": "increase", "amount": "5", "currency": "JPY", "reason": "goodwill"}
    refused = client.post(url, data)
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert (
        "“JPY” cannot be adjusted here: choose a currency the organisation offers or one the "
        "developer has a balance in (EUR, GBP, USD)." in refused.content.decode()
    )
    refused_select = (
        refused.content.decode().split('<select name="currency"')[1].split("</select>")[0]
    )
    assert " selected" not in refused_select  # "Choose…" shows, not another currency
    assert not Wallet.objects.filter(currency="JPY").exists()
    blank = client.post(url, {**data, "currency": ""})
    assert "Choose a currency." in blank.content.decode()

    confirm = client.post(url, {**data, "currency": "GBP"}).content.decode()
    assert "Increase the GBP balance by £5.00?" in confirm


def test_adjust_confirmation_does_not_warn_of_a_charge_the_monthly_cap_stops(
    client, portal_admin, prepaid_developer, django_capture_on_commit_callbacks
):

    account = prepaid_developer.billing_account
    wallet_credit(account=account, money=usd("30"), transaction_id="t1", actor=Actor.system())
    auto_recharge_on(account, threshold="20", amount="10", cap="10")
    with django_capture_on_commit_callbacks(execute=True):  # 30 -> 15, recharged to 25: cap used
        wallet_debit(account=account, money=usd("15"), transaction_id="u1", actor=Actor.system())
    assert RechargeAttempt.objects.filter(state="SUCCEEDED").count() == 1
    client.force_login(portal_admin)

    page = _adjust_confirmation(client, prepaid_developer, "decrease", "10")

    assert "recharge-warning" not in page
