"""The fee run (`charge_recurring_fees`): each fee once per subscription and period, however
often and from however many processes it runs; unpaid when a prepaid wallet cannot pay, paid
by the next credit; a future start charged when it starts."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import LedgerEntry, SentNotification, Subscription, Wallet
from billing.subscriptions.fees import month_start
from billing.subscriptions.services import recurring_fees_charge
from tests.conftest import usd
from tests.factories import DeveloperFactory, published_plan

ROOT = Path(__file__).resolve().parents[3]
NOW = timezone.now()
# Two months back, mid-month: the run owes the setup fee, that month's prorated fee and the
# full fee of every month since.
TWO_MONTHS_AGO = month_start(NOW.year, NOW.month - 2).replace(day=15, hour=9)


def bought_on(account, plan, start: datetime) -> Subscription:
    """A subscription that started at `start` and was never charged (a future-dated purchase
    whose start has come), as the purchase leaves one."""
    return Subscription.objects.create(
        billing_account=account,
        product=plan.product,
        rate_plan=plan,
        start_time=start,
        next_charge_at=start,
    )


def fee_ids(account) -> list[str]:
    entries = LedgerEntry.objects.filter(wallet__billing_account=account, kind="FEE")
    return list(entries.order_by("id").values_list("transaction_id", flat=True))


def credit(account, amount: str, transaction_id: str) -> None:
    wallet_credit(
        account=account, money=usd(amount), transaction_id=transaction_id, actor=Actor.system()
    )


def months_since(start: datetime) -> list[str]:
    months, at = [], start
    while at <= NOW:
        months.append(f"{at:%Y-%m}")
        at = month_start(at.year, at.month + 1)
    return months


@pytest.mark.django_db
def test_a_started_subscription_is_charged_once_however_often_the_run_runs(prepaid_account):
    plan = published_plan(setup="2", recurring="31", start=datetime(2026, 1, 1, tzinfo=UTC))
    credit(prepaid_account, "500", "t1")
    sub = bought_on(prepaid_account, plan, TWO_MONTHS_AGO)
    first = recurring_fees_charge()
    expected = [f"purchase:{sub.public_id}:setup"] + [
        f"fee:{sub.public_id}:{m}" for m in months_since(TWO_MONTHS_AGO)
    ]
    assert fee_ids(prepaid_account) == expected
    assert first.charged == len(expected) == 4
    again = recurring_fees_charge()
    call_command("charge_recurring_fees")
    assert again.charged == 0 and fee_ids(prepaid_account) == expected
    sub.refresh_from_db()
    assert sub.next_charge_at == month_start(NOW.year, NOW.month + 1)


@pytest.mark.django_db
def test_as_of_books_only_what_was_due_then(prepaid_account):
    plan = published_plan(recurring="31", start=datetime(2026, 1, 1, tzinfo=UTC))
    credit(prepaid_account, "500", "t1")
    sub = bought_on(prepaid_account, plan, TWO_MONTHS_AGO)
    last_month = month_start(NOW.year, NOW.month - 1)
    call_command("charge_recurring_fees", "--as-of", last_month.isoformat())
    assert fee_ids(prepaid_account) == [
        f"fee:{sub.public_id}:{TWO_MONTHS_AGO:%Y-%m}",
        f"fee:{sub.public_id}:{last_month:%Y-%m}",
    ]
    call_command("charge_recurring_fees")
    assert len(fee_ids(prepaid_account)) == 3


@pytest.mark.django_db
def test_a_future_start_is_charged_when_it_starts(prepaid_account):
    plan = published_plan(setup="10", start=datetime(2026, 1, 1, tzinfo=UTC))
    credit(prepaid_account, "10", "t1")
    start = datetime(2030, 3, 1, 8, tzinfo=UTC)
    sub = bought_on(prepaid_account, plan, start)
    assert recurring_fees_charge(as_of=datetime(2030, 3, 1, 7, tzinfo=UTC)).charged == 0
    assert recurring_fees_charge(as_of=start).charged == 1
    assert fee_ids(prepaid_account) == [f"purchase:{sub.public_id}:setup"]


@pytest.mark.django_db
def test_unpaid_when_the_wallet_cannot_pay_then_paid_by_the_next_credit(
    prepaid_account, django_capture_on_commit_callbacks
):
    plan = published_plan(recurring="31", start=datetime(2026, 1, 1, tzinfo=UTC))
    sub = bought_on(prepaid_account, plan, TWO_MONTHS_AGO)
    # Pays the first (prorated, at most $18.82) and the full second fee, not this month's.
    credit(prepaid_account, "57", "t1")
    run = recurring_fees_charge()
    sub.refresh_from_db()
    assert sub.unpaid_since is not None and sub.status(timezone.now()) == "Unpaid"
    assert run.unpaid and run.unpaid[0] == f"fee:{sub.public_id}:{sub.unpaid_period}"
    assert SentNotification.objects.filter(kind="FEE_UNPAID").count() == 1
    wallet = Wallet.objects.get(billing_account=prepaid_account)
    assert wallet.balance >= 0  # the floor held
    paid_before = fee_ids(prepaid_account)

    with django_capture_on_commit_callbacks(execute=True):
        credit(prepaid_account, "100", "t2")  # the reaction pays what is owed, once
    sub.refresh_from_db()
    assert sub.unpaid_since is None and sub.status(timezone.now()) == "Active"
    assert fee_ids(prepaid_account)[: len(paid_before)] == paid_before
    assert fee_ids(prepaid_account)[len(paid_before) :] == [
        f"fee:{sub.public_id}:{m}" for m in months_since(TWO_MONTHS_AGO)[len(paid_before) :]
    ]
    with django_capture_on_commit_callbacks(execute=True):
        credit(prepaid_account, "1", "t3")
    assert len(fee_ids(prepaid_account)) == len(months_since(TWO_MONTHS_AGO))


@pytest.mark.django_db
def test_the_unpaid_email_goes_once_and_says_what_to_do(prepaid_account):
    plan = published_plan(recurring="31", start=datetime(2026, 1, 1, tzinfo=UTC))
    bought_on(prepaid_account, plan, TWO_MONTHS_AGO)
    call_command("charge_recurring_fees")
    call_command("charge_recurring_fees")
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert plan.product.display_name in mail.outbox[0].subject
    assert "calls to" in body and "/account/balance/add-credit/USD/" in body


@pytest.mark.django_db
def test_an_ended_subscription_owes_nothing_more(prepaid_account):
    plan = published_plan(recurring="31", start=datetime(2026, 1, 1, tzinfo=UTC))
    credit(prepaid_account, "500", "t1")
    sub = bought_on(prepaid_account, plan, TWO_MONTHS_AGO)
    Subscription.objects.filter(pk=sub.pk).update(end_time=TWO_MONTHS_AGO.replace(day=20))
    recurring_fees_charge()
    assert fee_ids(prepaid_account) == [f"fee:{sub.public_id}:{TWO_MONTHS_AGO:%Y-%m}"]


def database_url() -> str:
    from django.db import connection  # noqa: PLC0415 - the test database, known only now

    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_processes_at_once_charge_each_fee_once(postgres):
    plan = published_plan(setup="1", recurring="31", start=datetime(2026, 1, 1, tzinfo=UTC))
    subs = []
    for n in range(30):
        account = DeveloperFactory().billing_account
        credit(account, "1000", f"t{n}")
        subs.append(bought_on(account, plan, TWO_MONTHS_AGO))
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    env.pop("CELERY_BROKER_URL", None)
    command = [sys.executable, "manage.py", "charge_recurring_fees"]
    runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    per_sub = 1 + len(months_since(TWO_MONTHS_AGO))
    fees = LedgerEntry.objects.filter(kind="FEE")
    assert fees.count() == 30 * per_sub
    charged = [int(out.split(", ")[1].split()[0]) for out in outputs]
    assert sum(charged) == 30 * per_sub, outputs  # each fee charged by exactly one of them
    call_command("check_ledger")


@pytest.mark.django_db
def test_only_a_wallet_that_owes_fees_states_the_credit(
    prepaid_account, django_capture_on_commit_callbacks
):
    """The payment webhook credits many wallets: those that owe nothing must not set off the
    fee reaction (it would cost every top-up a task)."""
    with django_capture_on_commit_callbacks() as nothing_owed:
        credit(prepaid_account, "1", "t0")
    # (A top-up re-arms the low-balance alerts: that reaction, and no other.)
    assert [hook.__qualname__ for hook in nothing_owed] == ["check_balance_alerts"]
    plan = published_plan(recurring="31", start=datetime(2026, 1, 1, tzinfo=UTC))
    bought_on(prepaid_account, plan, TWO_MONTHS_AGO)
    recurring_fees_charge()
    assert Wallet.objects.get(billing_account=prepaid_account).owes_fees
    with django_capture_on_commit_callbacks(execute=True) as owed:
        credit(prepaid_account, "200", "t1")
    assert len(owed) >= 1
    assert not Wallet.objects.get(billing_account=prepaid_account).owes_fees  # all paid
