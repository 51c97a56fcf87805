"""Saving auto-recharge never charges the card without a clear yes: when saving would charge at
once, a confirmation page says exactly what, to which card, and nothing is charged until the
developer confirms; afterwards the page says what was charged."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse

from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit, wallet_debit
from billing.models import AutoRecharge, RechargeAttempt, TopUp, Wallet
from billing.payments.cards import card_save
from billing.payments.customers import stripe_customer_ensure
from tests.conftest import NANOS_PER_UNIT, usd
from tests.fakes.stripe_server import FakeStripe

pytestmark = pytest.mark.django_db

URL = reverse("auto_recharge_settings", args=["USD"])


def settings_form(threshold: str = "20", amount: str = "50", cap: str = "", mode: str = "FIXED"):
    return {
        "recharge-USD-enabled": "on",
        "recharge-USD-threshold": threshold,
        "recharge-USD-mode": mode,
        "recharge-USD-amount": amount,
        "recharge-USD-monthly_cap": cap,
    }


@pytest.fixture
def account(prepaid_account):
    card_save(
        account=prepaid_account,
        payment_method_id="pm_offline_visa_4242",
        brand="visa",
        last4="4242",
    )
    prepaid_account.refresh_from_db()
    wallet_credit(
        account=prepaid_account, money=usd("3"), transaction_id="opening", actor=Actor.system()
    )
    return prepaid_account


@pytest.fixture
def signed_in(client, account):
    client.force_login(account.user)
    return client


def balance(account) -> int:
    return Wallet.objects.get(billing_account=account, currency="USD").balance


def test_saving_below_the_threshold_asks_first_and_charges_nothing(signed_in, account):
    page = signed_in.post(URL, settings_form())

    assert page.status_code == HTTPStatus.OK
    text = page.content.decode()
    assert "Saving charges <strong>Visa •••• 4242</strong>" in text
    assert "$50.00</strong> now." in text
    assert "Your USD balance, $3.00, is below the threshold of $20.00." in text
    assert not AutoRecharge.objects.exists()  # nothing saved
    assert not RechargeAttempt.objects.exists() and not TopUp.objects.exists()  # nothing charged
    assert balance(account) == 3 * NANOS_PER_UNIT


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_confirming_saves_charges_once_and_says_what_was_charged(signed_in, account):
    """Committed for real: in-process the recharge runs at the save's commit, so the page can
    say what was charged."""
    saved = signed_in.post(URL, {**settings_form(), "confirm_charge": str(50 * NANOS_PER_UNIT)})

    assert saved.status_code == HTTPStatus.FOUND
    assert AutoRecharge.objects.get().enabled
    assert RechargeAttempt.objects.get().state == RechargeAttempt.State.SUCCEEDED
    assert balance(account) == 53 * NANOS_PER_UNIT
    page = signed_in.get(saved["Location"]).content.decode()
    assert "Visa •••• 4242 was charged $50.00" in page


def test_a_confirmation_for_another_amount_asks_again(signed_in, account):
    """The balance moved between the question and the answer (a target now needs more): the
    developer confirmed another amount, so nothing is charged and the new one is shown."""
    form = settings_form(threshold="20", amount="60", mode="TARGET")  # 60 - 3 = 57.00
    page = signed_in.post(URL, {**form, "confirm_charge": str(40 * NANOS_PER_UNIT)})

    text = page.content.decode()
    assert page.status_code == HTTPStatus.OK
    assert "changed since you looked: it is now $57.00" in text
    assert not AutoRecharge.objects.exists() and not RechargeAttempt.objects.exists()


def test_saving_above_the_threshold_saves_without_asking(
    signed_in, account, django_capture_on_commit_callbacks
):
    wallet_credit(account=account, money=usd("97"), transaction_id="more", actor=Actor.system())
    with django_capture_on_commit_callbacks(execute=True):
        saved = signed_in.post(URL, settings_form())

    assert saved.status_code == HTTPStatus.FOUND
    assert "Auto-recharge for USD is on." in signed_in.get(saved["Location"]).content.decode()
    assert not RechargeAttempt.objects.exists()


def test_switching_off_never_asks(signed_in, account):
    saved = signed_in.post(URL, {**settings_form(), "recharge-USD-enabled": ""})
    assert saved.status_code == HTTPStatus.FOUND
    assert not AutoRecharge.objects.get().enabled


@pytest.mark.parametrize(
    "form, message",
    [
        (settings_form(threshold="0"), "cannot be negative or zero"),
        (settings_form(threshold="999999999"), "can be at most $100.00, the largest top-up"),
        (settings_form(amount="50", cap="20"), "A monthly cap of $20.00 is below the recharge"),
    ],
)
def test_settings_that_could_not_work_are_refused_before_any_question(
    signed_in, account, form, message
):
    refused = signed_in.post(URL, form)

    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert message in refused.content.decode()
    assert "Saving charges" not in refused.content.decode()
    assert not AutoRecharge.objects.exists() and not RechargeAttempt.objects.exists()


def test_with_stripe_no_payment_intent_is_made_until_confirmed(
    fake_stripe: FakeStripe, client, prepaid_developer: Any, django_capture_on_commit_callbacks
):
    account = prepaid_developer.billing_account
    card = fake_stripe.add_payment_method(customer=stripe_customer_ensure(account))
    card_save(account=account, payment_method_id=card["id"], brand="visa", last4="4242")
    client.force_login(prepaid_developer)

    asked = client.post(URL, settings_form())

    assert "Saving charges" in asked.content.decode()
    assert fake_stripe.objects("payment_intent") == []
    with django_capture_on_commit_callbacks(execute=True):
        client.post(URL, {**settings_form(), "confirm_charge": str(50 * NANOS_PER_UNIT)})
    [intent] = fake_stripe.objects("payment_intent")
    assert (intent["amount"], intent["payment_method"]) == (5000, card["id"])


def test_the_summary_shows_the_monthly_cap_used(
    signed_in, account, django_capture_on_commit_callbacks
):
    wallet_credit(account=account, money=usd("97"), transaction_id="more", actor=Actor.system())
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post(URL, settings_form(threshold="20", amount="20", cap="50"))
        wallet_debit(account=account, money=usd("90"), transaction_id="use", actor=Actor.system())

    page = signed_in.get(reverse("my_balance")).content.decode()
    assert "$20.00 of $50.00 used this month" in page
