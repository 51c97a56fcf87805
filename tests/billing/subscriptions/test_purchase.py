"""Buying a plan: the first fees from the wallet in one transaction, once; refused with the
shortfall when a prepaid wallet cannot pay; one open subscription per product."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.exceptions import AlreadyExists, NotFound
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import LedgerEntry, Subscription
from billing.subscriptions.fees import purchase_quote
from billing.subscriptions.services import (
    PurchaseRefused,
    subscription_expire,
    subscription_purchase,
)
from tests.conftest import usd
from tests.factories import ApiProductFactory, published_plan

pytestmark = pytest.mark.django_db


def _fund(account, amount: str) -> None:
    wallet_credit(
        account=account, money=usd(amount), transaction_id=f"t-{amount}-{account.pk}",
        actor=Actor.system(),
    )  # fmt: skip


def _fees(account) -> list[tuple[str, int, str]]:
    entries = LedgerEntry.objects.filter(wallet__billing_account=account, kind="FEE")
    return list(entries.order_by("id").values_list("transaction_id", "amount", "memo"))


def test_purchase_charges_setup_and_prorated_first_fee(prepaid_account):
    plan = published_plan(setup="10", recurring="31", display_name="Standard")
    _fund(prepaid_account, "100")
    bought = subscription_purchase(
        account=prepaid_account, product=plan.product, actor=Actor.system()
    )
    sub = bought.subscription
    quote = purchase_quote(plan, sub.start_time)
    fees = _fees(prepaid_account)
    assert [f[0] for f in fees] == [
        f"purchase:{sub.public_id}:setup",
        f"fee:{sub.public_id}:{sub.start_time:%Y-%m}",
    ]
    assert -fees[0][1] == usd("10").nanos
    assert -fees[1][1] == quote.first_fee.nanos > 0
    assert fees[0][2] == f"Setup fee: {plan.product.display_name}, Standard plan"
    assert sub.status(timezone.now()) == "Active"
    assert sub.next_charge_at is not None and sub.next_charge_at.day == 1


def test_prepaid_shortfall_is_exact_and_nothing_is_charged(prepaid_account):
    plan = published_plan(setup="10")
    _fund(prepaid_account, "5")
    with pytest.raises(PurchaseRefused) as refused:
        subscription_purchase(account=prepaid_account, product=plan.product, actor=Actor.system())
    assert refused.value.shortfall == usd("5")
    assert str(refused.value) == (
        "You have insufficient funds to purchase this plan. Add at least $5.00 to your balance."
    )
    assert _fees(prepaid_account) == []
    assert not Subscription.objects.exists()


def test_shortfall_rounds_up_to_the_cent(prepaid_account):
    plan = published_plan(setup="10.001")
    _fund(prepaid_account, "5")
    with pytest.raises(PurchaseRefused) as refused:
        subscription_purchase(account=prepaid_account, product=plan.product, actor=Actor.system())
    assert refused.value.shortfall == usd("5.01")


def test_postpaid_fees_accrue(developer):
    plan = published_plan(setup="10")
    subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    )
    assert -_fees(developer.billing_account)[0][1] == usd("10").nanos


def test_zero_fees_buy_without_an_entry(prepaid_account):
    plan = published_plan()
    bought = subscription_purchase(
        account=prepaid_account, product=plan.product, actor=Actor.system()
    )
    assert bought.subscription.pk and _fees(prepaid_account) == []
    assert bought.subscription.next_charge_at is None  # nothing will ever be due


def test_second_open_purchase_is_refused_and_same_key_replays(prepaid_account):
    plan = published_plan(setup="1")
    _fund(prepaid_account, "10")
    first = subscription_purchase(
        account=prepaid_account, product=plan.product, actor=Actor.system(), idempotency_key="k1"
    )
    again = subscription_purchase(
        account=prepaid_account, product=plan.product, actor=Actor.system(), idempotency_key="k1"
    )
    assert again.replayed and again.subscription.pk == first.subscription.pk
    with pytest.raises(AlreadyExists):
        subscription_purchase(account=prepaid_account, product=plan.product, actor=Actor.system())
    assert len(_fees(prepaid_account)) == 1


def test_expire_then_buy_again(prepaid_account):
    plan = published_plan(setup="1")
    _fund(prepaid_account, "10")
    first = subscription_purchase(
        account=prepaid_account, product=plan.product, actor=Actor.system()
    )
    ended = subscription_expire(subscription=first.subscription, actor=Actor.system())
    assert ended.status(timezone.now()) == "Ended"
    second = subscription_purchase(
        account=prepaid_account, product=plan.product, actor=Actor.system()
    )
    assert second.subscription.pk != first.subscription.pk
    assert len(_fees(prepaid_account)) == 2


def test_unpublished_or_unknown_plan_is_not_found(prepaid_account):
    with pytest.raises(NotFound):
        subscription_purchase(
            account=prepaid_account, product=ApiProductFactory(), actor=Actor.system()
        )


def test_future_start_is_funds_checked_now_and_not_charged(prepaid_account):
    plan = published_plan(setup="10")
    start = timezone.now() + timedelta(days=3)
    _fund(prepaid_account, "5")
    with pytest.raises(PurchaseRefused):
        subscription_purchase(
            account=prepaid_account, product=plan.product, actor=Actor.system(), start_time=start
        )
    _fund(prepaid_account, "6")
    bought = subscription_purchase(
        account=prepaid_account, product=plan.product, actor=Actor.system(), start_time=start
    )
    assert bought.subscription.status(timezone.now()) == "Future"
    assert _fees(prepaid_account) == []


def test_past_start_is_refused(prepaid_account):
    plan = published_plan()
    with pytest.raises(Exception, match="startTime is in the past"):
        subscription_purchase(
            account=prepaid_account,
            product=plan.product,
            actor=Actor.system(),
            start_time=timezone.now() - timedelta(days=1),
        )
