"""Purchases under real concurrency on PostgreSQL: many at once buy once, and a purchase racing
a debit never takes a prepaid wallet below its floor."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.db import connection

from billing.exceptions import AlreadyExists, InsufficientFunds
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit, wallet_debit
from billing.models import LedgerEntry, Subscription, Wallet
from billing.subscriptions.services import subscription_expire, subscription_purchase
from tests.conftest import usd
from tests.factories import published_plan

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def run_together(jobs: list[Callable[[], str]]) -> Counter:
    """Run each job in its own thread (its own connection), released at the same instant."""
    barrier = threading.Barrier(len(jobs))
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def run(job: Callable[[], str]) -> None:
        barrier.wait()
        try:
            outcome = job()
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test counts
            outcome = type(exc).__name__
        finally:
            connection.close()
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def test_twenty_purchases_at_once_make_one_subscription_and_one_charge(postgres, prepaid_account):
    plan = published_plan(setup="10")
    wallet_credit(
        account=prepaid_account, money=usd("100"), transaction_id="t1", actor=Actor.system()
    )

    def buy(n: int) -> Callable[[], str]:
        def job() -> str:
            try:
                subscription_purchase(
                    account=prepaid_account,
                    product=plan.product,
                    actor=Actor.system(),
                    idempotency_key=f"tab-{n % 2}",  # two tabs, each clicked ten times
                )
            except AlreadyExists:
                return "already"
            return "bought"

        return job

    outcomes = run_together([buy(n) for n in range(20)])
    assert Subscription.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="FEE").count() == 1
    # The first tab's clicks replay its purchase; the other tab's are told it is bought.
    assert outcomes["bought"] + outcomes["already"] == 20 and outcomes["already"] >= 1
    assert Wallet.objects.get().balance == usd("90").nanos
    call_command("check_ledger")


def test_a_purchase_racing_a_debit_never_goes_below_the_floor(postgres, prepaid_account):
    plan = published_plan(setup="10")
    for round_ in range(10):
        for open_ in Subscription.objects.filter(end_time__isnull=True):
            subscription_expire(subscription=open_, actor=Actor.system())
        wallet_credit(
            account=prepaid_account,
            money=usd("10"),
            transaction_id=f"c{round_}",
            actor=Actor.system(),
        )

        def purchase() -> str:
            subscription_purchase(
                account=prepaid_account, product=plan.product, actor=Actor.system()
            )
            return "bought"

        def debit(round_: int = round_) -> str:
            wallet_debit(
                account=prepaid_account,
                money=usd("10"),
                transaction_id=f"d{round_}",
                actor=Actor.system(),
            )
            return "debited"

        outcomes = run_together([purchase, debit])
        # The refused side is told so: PurchaseRefused or InsufficientFunds.
        refused = sum(n for name, n in outcomes.items() if name not in ("bought", "debited"))
        assert refused == 1, outcomes
        assert set(outcomes) - {"bought", "debited"} <= {
            "PurchaseRefused",
            InsufficientFunds.__name__,
        }
        assert Wallet.objects.get().balance == 0
