"""Failures look like failures: a declined auto-recharge and a failed or pending top-up are
shown as warnings (an icon and words, not colour alone) with the reason and the next step, on
the auto-recharge panel and on the balance row; the balance page lists recent payments, and
"Try again" keeps the amount."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.urls import reverse

from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit, wallet_debit
from billing.models import TopUp
from billing.payments.cards import card_save
from billing.top_ups.confirmations import top_up_fail
from tests.conftest import usd
from tests.factories import auto_recharge_on

pytestmark = pytest.mark.django_db

DECLINED = "pm_offline_visa_0002"


@pytest.fixture
def signed_in(client, prepaid_account):
    wallet_credit(
        account=prepaid_account, money=usd("30"), transaction_id="opening", actor=Actor.system()
    )
    client.force_login(prepaid_account.user)
    return client


def balance_page(client) -> str:
    return client.get(reverse("my_balance")).content.decode()


def wallet_row(page: str) -> str:
    return page[page.index('data-testid="wallets"') : page.index("</table>")]


def test_a_declined_recharge_is_a_warning_with_the_reason_and_the_next_step(
    signed_in, prepaid_account, django_capture_on_commit_callbacks
):
    card_save(account=prepaid_account, payment_method_id=DECLINED, brand="visa", last4="0002")
    prepaid_account.refresh_from_db()
    auto_recharge_on(prepaid_account, threshold="20", amount="50", card=DECLINED)
    with django_capture_on_commit_callbacks(execute=True):
        wallet_debit(
            account=prepaid_account, money=usd("15"), transaction_id="use", actor=Actor.system()
        )

    page = balance_page(signed_in)
    panel = page[page.index('data-testid="recharge-state-USD"') :]
    assert "On, but the last recharge failed:</strong> Your card was declined (test card)." in panel
    assert "Next step: replace your card." in panel
    assert '<span aria-hidden="true">⚠</span>' in panel[:400]
    assert 'class="status warn"' in page[page.rindex("<div", 0, page.index("recharge-state-USD")) :]
    assert "✓</span> <strong>On.</strong>" not in page  # no longer the green "On."
    row = wallet_row(page)
    assert "Auto-recharge failed: Your card was declined (test card)." in row
    assert 'href="/account/balance/#auto-recharge">Replace card</a>' in row


def test_a_failed_top_up_warns_on_its_balance_and_try_again_keeps_the_amount(
    signed_in, prepaid_account
):
    signed_in.post(reverse("add_credit", args=["USD"]), {"amount": "20.50"})
    top_up = TopUp.objects.get()
    top_up_fail(top_up=top_up, reason="Your card was declined.")

    page = balance_page(signed_in)
    row = wallet_row(page)
    assert "Your top-up of $20.50 failed: Your card was declined." in row
    try_again = reverse("add_credit", args=["USD"]) + "?amount=20.5"
    assert f'href="{try_again}">Try again</a>' in row
    form = signed_in.get(try_again).content.decode()
    assert re.search(r'name="amount" value="20.5"', form)


def test_a_pending_top_up_says_it_is_not_paid_yet_with_its_status(signed_in, prepaid_account):
    signed_in.post(reverse("add_credit", args=["USD"]), {"amount": "20"})
    top_up = TopUp.objects.get()

    row = wallet_row(balance_page(signed_in))

    assert "Your top-up of $20.00 is not paid yet." in row
    assert reverse("top_up_status", args=[top_up.public_id]) in row
    assert "⏳" in row


def test_a_succeeded_top_up_raises_no_warning(signed_in, prepaid_account):
    signed_in.post(reverse("add_credit", args=["USD"]), {"amount": "20"})
    TopUp.objects.update(state=TopUp.State.SUCCEEDED)
    assert 'data-testid="payment-warning"' not in balance_page(signed_in)


def test_recent_payments_list_each_payment_with_what_became_of_it(signed_in, prepaid_account):
    signed_in.post(reverse("add_credit", args=["USD"]), {"amount": "20"})
    top_up_fail(top_up=TopUp.objects.get(), reason="Your card was declined.")
    TopUp.objects.create(billing_account=prepaid_account, currency="USD", amount=10**10)

    page = balance_page(signed_in)
    payments = page[page.index('data-testid="payments"') :]
    payments = payments[: payments.index("</table>")]
    assert "Failed: Your card was declined." in payments
    assert "Pending" in payments
    assert payments.count("Try again") == 1


def test_an_admin_sees_the_warnings_without_the_developers_buttons(
    client, portal_admin, prepaid_account
):
    client.force_login(prepaid_account.user)
    client.post(reverse("add_credit", args=["USD"]), {"amount": "20"})
    top_up_fail(top_up=TopUp.objects.get(), reason="Your card was declined.")
    client.force_login(portal_admin)

    page = client.get(reverse("people_balance", args=[prepaid_account.user.pk]))

    assert page.status_code == HTTPStatus.OK
    text = page.content.decode()
    assert "Your top-up of $20.00 failed: Your card was declined." in text
    assert "Try again" not in text
