"""expire_credits twice at once, while the wallets are being debited: each lot expires once,
and the lots still add up to the balances (PostgreSQL, two processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from billing.expiry.services import credit_lifetime_set
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit, wallet_debit
from billing.models import CreditLot, LedgerEntry
from tests.billing.subscriptions.test_fee_run import ROOT, database_url
from tests.conftest import usd
from tests.factories import DeveloperFactory

WALLETS = 20


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_runs_at_once_with_debits_going_on_expire_each_lot_once(postgres):
    credit_lifetime_set(days=30, changed_by=None)
    accounts = [DeveloperFactory().billing_account for _ in range(WALLETS)]
    for n, account in enumerate(accounts):
        old = wallet_credit(
            account=account, money=usd("10"), transaction_id=f"old{n}", actor=Actor.system()
        )
        LedgerEntry.objects.filter(pk=old.entry.pk).update(
            created_at=timezone.now() - timedelta(days=31)
        )
        wallet_credit(
            account=account, money=usd("5"), transaction_id=f"new{n}", actor=Actor.system()
        )
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    env.pop("CELERY_BROKER_URL", None)
    command = [sys.executable, "manage.py", "expire_credits"]

    def spend(account, n: int) -> None:
        try:
            for i in range(5):
                wallet_debit(
                    account=account,
                    money=usd("0.40"),
                    transaction_id=f"d{n}-{i}",
                    actor=Actor.system(),
                )
        finally:
            connection.close()

    runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    spenders = [threading.Thread(target=spend, args=(a, n)) for n, a in enumerate(accounts)]
    for thread in spenders:
        thread.start()
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    for thread in spenders:
        thread.join(60)
    assert [run.returncode for run in runs] == [0, 0], outputs

    summaries = [out.strip().splitlines()[-1] for out in outputs]  # after the emails printed
    booked = [int(summary.split(", ")[1].split()[0]) for summary in summaries]
    expiries = LedgerEntry.objects.filter(kind="EXPIRY")
    assert sum(booked) == expiries.count() == WALLETS, summaries  # each by exactly one run
    assert sorted(expiries.values_list("transaction_id", flat=True)) == sorted(
        f"expiry:{pk}"
        for pk in CreditLot.objects.filter(expired_at__isnull=False).values_list("pk", flat=True)
    )
    assert LedgerEntry.objects.filter(kind="USAGE").count() == WALLETS * 5
    call_command("check_ledger")  # the balances match the entries, and the lots the balances
