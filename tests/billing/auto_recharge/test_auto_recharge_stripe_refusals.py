"""Auto-recharge against the real stripe library (in-process, the fake Stripe): when Stripe
refuses the portal itself (its API key revoked or rotated), the developer's card is not to
blame: they are not emailed to update it and their auto-recharge is not switched off."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core import mail

from billing.auto_recharge.charge import auto_recharge_charge
from billing.auto_recharge.claim import auto_recharge_claim
from billing.auto_recharge.settings import auto_recharge_configure
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit, wallet_debit
from billing.models import AutoRecharge, RechargeAttempt
from billing.money import Money
from billing.payments import stripe_gateway
from billing.payments.customers import stripe_customer_ensure
from tests.conftest import usd
from tests.fakes.stripe_server import FakeStripe

pytestmark = pytest.mark.django_db


@pytest.fixture
def recharge_account(fake_stripe: FakeStripe, prepaid_developer: Any) -> Any:
    account = prepaid_developer.billing_account
    customer_id = stripe_customer_ensure(account)
    card = fake_stripe.add_payment_method(customer=customer_id)
    account.stripe_payment_method_id = card["id"]
    account.save(update_fields=["stripe_payment_method_id"])
    wallet_credit(account=account, money=usd("30"), transaction_id="opening", actor=Actor.system())
    auto_recharge_configure(
        account=account,
        currency="USD",
        enabled=True,
        threshold=usd("20"),
        mode="FIXED",
        amount=usd("50"),
        monthly_cap=None,
        changed_by=None,
    )
    wallet_debit(account=account, money=usd("15"), transaction_id="usage", actor=Actor.system())
    return account


def test_a_revoked_api_key_neither_blames_the_card_nor_switches_auto_recharge_off(
    recharge_account, settings, django_capture_on_commit_callbacks
):
    settings.STRIPE_SECRET_KEY = "sk_live_revoked_key"  # Stripe answers 401 to every call
    for _ in range(3):  # three tries an hour apart
        AutoRecharge.objects.update(retry_after=None)
        attempt = auto_recharge_claim(account_id=recharge_account.pk, currency="USD")
        assert attempt is not None
        with django_capture_on_commit_callbacks(execute=True):  # emails go after the commit
            assert auto_recharge_charge(attempt_id=attempt.pk) == RechargeAttempt.State.FAILED

    recharge = AutoRecharge.objects.get()
    assert recharge.enabled, recharge.disabled_reason
    assert recharge.consecutive_failures == 0
    assert recharge.retry_after is not None  # a short pause, then it tries again
    developer_mails = [m for m in mail.outbox if recharge_account.user.email in m.to]
    assert developer_mails == []


def test_a_charge_of_another_attempt_with_the_same_id_is_not_taken_for_this_one(
    fake_stripe: FakeStripe, prepaid_developer: Any
) -> None:
    """After a saved Stripe error the attempt's charge is looked up by its metadata. Attempt ids
    come round again after a database restore: an old charge under the same attempt id, for
    another top-up, must not be credited to this attempt."""

    customer_id = stripe_customer_ensure(prepaid_developer.billing_account)
    card = fake_stripe.add_payment_method(customer=customer_id)

    def charge(top_up_id: str, key: str) -> str:
        return stripe_gateway.off_session_charge(
            customer_id=customer_id,
            payment_method_id=card["id"],
            money=Money(50 * 10**9, "USD"),
            metadata={"top_up_id": top_up_id, "recharge_attempt_id": "7"},
            idempotency_key=key,
        ).payment_intent_id

    charge(str(uuid.uuid4()), "before-the-restore")
    mine = str(uuid.uuid4())
    assert (
        stripe_gateway.payment_intent_for_attempt(
            customer_id=customer_id, attempt_id=7, top_up_id=mine
        )
        is None
    )

    made = charge(mine, "after-the-restore")

    found = stripe_gateway.payment_intent_for_attempt(
        customer_id=customer_id, attempt_id=7, top_up_id=mine
    )
    assert found is not None and found.payment_intent_id == made
