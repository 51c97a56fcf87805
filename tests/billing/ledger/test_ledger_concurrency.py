"""Invariants 2–4 under real concurrency: many processes against PostgreSQL."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from billing.billing_type.services import billing_type_set
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import BillingTypeChange, LedgerEntry, Wallet
from billing.money import Money
from tests.conftest import NANOS_PER_UNIT
from tests.factories import DeveloperFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ROOT = Path(__file__).resolve().parents[3]


def database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def run_workers(tmp_path: Path, account_id: int, jobs: list[list]) -> Counter:
    """Start one process per job, all released at the same instant; sum their outcomes."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    start_at = time.time() + 3
    procs = []
    for n, ops in enumerate(jobs):
        ops_file, result_file = tmp_path / f"ops{n}.json", tmp_path / f"result{n}.json"
        ops_file.write_text(json.dumps({"account_id": account_id, "ops": ops}))
        procs.append(
            (
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.billing.ledger.ledger_worker",
                        str(ops_file),
                        str(result_file),
                        str(start_at),
                    ],
                    cwd=ROOT,
                    env=env,
                ),
                result_file,
            )
        )
    total: Counter = Counter()
    for proc, result_file in procs:
        assert proc.wait(timeout=300) == 0
        total.update(json.loads(result_file.read_text()))
    connection.close()  # the workers' writes are read through a fresh connection
    return total


@pytest.fixture
def prepaid_account(postgres):
    developer = DeveloperFactory()
    account = developer.billing_account
    billing_type_set(
        account=account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    account.refresh_from_db()
    return account


def test_many_processes_mixed_operations_end_at_the_exact_sum(prepaid_account, tmp_path):
    rng = random.Random(20261121)
    opening = 1_000_000 * NANOS_PER_UNIT
    wallet_credit(
        account=prepaid_account,
        money=Money(opening, "USD"),
        transaction_id="opening",
        actor=Actor.system(),
    )

    credits = [("credit", f"c{n}", rng.randint(1, 10**12)) for n in range(1000)]
    debits = [("debit", f"d{n}", rng.randint(1, 10**11)) for n in range(1000)]
    unique = credits + debits
    # Duplicates of operations in the same run race their originals from another process;
    # conflicts reuse a pre-applied id with another amount and must always lose.
    duplicates = rng.sample(unique, 400)
    pre_applied = [("credit", f"pre{n}", 5 * NANOS_PER_UNIT) for n in range(50)]
    for _, tid, nanos in pre_applied:
        wallet_credit(
            account=prepaid_account,
            money=Money(nanos, "USD"),
            transaction_id=tid,
            actor=Actor.system(),
        )
    conflicts = [("credit", tid, nanos + 1) for _, tid, nanos in pre_applied]

    workers = 10
    jobs: list[list] = [[] for _ in range(workers)]
    for n, op in enumerate(unique):
        jobs[n % workers].append(op)
    for n, op in enumerate(duplicates):
        original_worker = unique.index(op) % workers
        jobs[(original_worker + 1 + n % (workers - 1)) % workers].append(op)
    for n, op in enumerate(conflicts):
        jobs[n % workers].append(op)
    for job in jobs:
        rng.shuffle(job)
    total_ops = sum(len(job) for job in jobs)
    assert total_ops >= 2000 and workers >= 8

    outcomes = run_workers(tmp_path, prepaid_account.pk, jobs)

    expected = (
        opening
        + sum(nanos for _, _, nanos in pre_applied)
        + sum(nanos for op, _, nanos in unique if op == "credit")
        - sum(nanos for op, _, nanos in unique if op == "debit")
    )
    assert outcomes == Counter(
        applied=len(unique), replayed=len(duplicates), conflict=len(conflicts)
    )
    assert Wallet.objects.get(billing_account=prepaid_account).balance == expected
    assert LedgerEntry.objects.count() == 1 + len(pre_applied) + len(unique)
    call_command("check_ledger")  # exits non-zero on a mismatch


def test_concurrent_debits_never_overspend_a_prepaid_wallet(prepaid_account, tmp_path):
    wallet_credit(
        account=prepaid_account,
        money=Money(100 * NANOS_PER_UNIT, "USD"),
        transaction_id="opening",
        actor=Actor.system(),
    )
    jobs = [[("debit", f"w{w}-{n}", NANOS_PER_UNIT) for n in range(25)] for w in range(10)]

    outcomes = run_workers(tmp_path, prepaid_account.pk, jobs)

    assert outcomes == Counter(applied=100, insufficient=150)
    assert Wallet.objects.get(billing_account=prepaid_account).balance == 0
    assert not LedgerEntry.objects.filter(balance_after__lt=0).exists()
    call_command("check_ledger")
