"""The home page after signing in: a developer's money at a glance; admins go to People."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.urls import reverse

from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import TopUp
from billing.top_ups.confirmations import top_up_fail
from tests.conftest import usd
from tests.factories import PASSWORD, auto_recharge_on

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_see_what_the_portal_is(client):
    page = client.get("/").content.decode()
    assert "Sign up" in page and "Sign in" in page


def test_admins_land_on_people(client, admin_without_permission, portal_admin):
    for admin in (admin_without_permission, portal_admin):
        client.force_login(admin)
        response = client.get("/")
        assert response.status_code == HTTPStatus.FOUND
        assert response["Location"] == reverse("people_list")


def test_signing_in_lands_a_developer_on_home(client, developer):
    response = client.post(
        reverse("account_login"), {"login": developer.email, "password": PASSWORD}
    )
    assert response["Location"] == "/"


def test_a_developer_sees_balances_warnings_auto_recharge_and_recent_activity(
    client, prepaid_account, django_capture_on_commit_callbacks
):
    wallet_credit(
        account=prepaid_account, money=usd("42.50"), transaction_id="t1", actor=Actor.system()
    )
    auto_recharge_on(prepaid_account, threshold="20", amount="50")
    client.force_login(prepaid_account.user)
    client.post(reverse("add_credit", args=["USD"]), {"amount": "15"})
    top_up_fail(top_up=TopUp.objects.get(), reason="Your card was declined.")

    page = client.get("/").content.decode()

    balances = page[page.index('data-testid="balances"') :]
    assert "$42.50" in balances
    assert "Your top-up of $15.00 failed: Your card was declined." in balances
    assert "USD: on.</strong> When the balance falls below $20.00, add $50.00." in page
    activity = page[page.index('data-testid="activity"') :]
    assert "+$42.50" in activity


def test_a_postpaid_developer_is_told_so(client, developer):
    client.force_login(developer)
    page = client.get("/").content.decode()
    assert "You are on <strong>Postpaid</strong> billing" in page
    assert "Auto-recharge" not in page
