"""Auto-recharge latency with a real Celery worker and Redis: from the threshold-crossing debit
to the PaymentIntent request at (fake) Stripe, and to the credited recharge.

    .venv/bin/python bench/recharge.py [--runs 60]

Needs PostgreSQL (BENCH_DATABASE_URL) and Redis (BENCH_REDIS_URL, default db 13). The fake
Stripe server answers at once. Target (issue 5): p95 under 500 ms to the PaymentIntent request.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _setup import bench_database_url, django_setup  # noqa: E402

from tests.fakes.stripe_server import FakeStripeProcess  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "portal",
            "worker",
            "--loglevel=WARNING",
            "--concurrency=2",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from portal.celery import app

    deadline = time.time() + 60
    while time.time() < deadline:
        if app.control.ping(timeout=0.5):
            return worker
    worker.kill()
    raise RuntimeError("the Celery worker did not answer")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()

    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    with FakeStripeProcess() as fake:
        secrets = {
            "STRIPE_SECRET_KEY": "sk_test_bench",
            "STRIPE_WEBHOOK_SECRET": "whsec_bench",
            "STRIPE_API_BASE": fake.url,
            "STRIPE_MAX_NETWORK_RETRIES": "0",
            "CELERY_BROKER_URL": REDIS_URL,
        }
        os.environ.update(secrets)
        database_url = bench_database_url()
        django_setup(database_url)
        worker = start_worker({**os.environ, "DATABASE_URL": database_url})
        try:
            to_request, to_credit = measure(fake, args.runs)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    print(
        f"runs: {len(to_request)} (real celery worker, Redis {REDIS_URL}, PostgreSQL, fake Stripe)"
    )
    for name, values in (
        ("debit → PaymentIntent request", to_request),
        ("debit → credited recharge", to_credit),
    ):
        ms = [v * 1000 for v in values]
        print(
            f"{name:32}: median {statistics.median(ms):6.1f} ms   p95 {percentile(ms, 95):6.1f} ms   max {max(ms):6.1f} ms"
        )
    print("target: p95 under 500 ms to the PaymentIntent request")


def measure(fake: FakeStripeProcess, runs: int) -> tuple[list[float], list[float]]:
    from accounts.models import User
    from billing.auto_recharge.settings import auto_recharge_configure
    from billing.billing_accounts.services import billing_account_get_or_create
    from billing.billing_type.services import billing_type_set
    from billing.ledger.entries import Actor
    from billing.ledger.services import wallet_credit, wallet_debit
    from billing.models import BillingTypeChange, LedgerEntry
    from billing.money import money_parse
    from billing.payments.cards import card_save
    from billing.payments.customers import stripe_customer_ensure

    def usd(text: str):
        return money_parse(text, "USD")

    to_request: list[float] = []
    to_credit: list[float] = []
    for run in range(runs):
        user = User.objects.create(email=f"bench-recharge-{uuid.uuid4().hex[:10]}@example.com")
        account = billing_account_get_or_create(user=user)
        billing_type_set(
            account=account,
            billing_type="PREPAID",
            changed_by=None,
            source=BillingTypeChange.Source.ADMIN,
        )
        stripe_customer_ensure(account)
        card_save(account=account, payment_method_id="pm_card_visa", brand="visa", last4="4242")
        account.refresh_from_db()
        wallet_credit(
            account=account, money=usd("30"), transaction_id=f"open-{user.pk}", actor=Actor.system()
        )
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
        seen = len(fake.received_requests())
        start = time.time()
        wallet_debit(
            account=account, money=usd("15"), transaction_id=f"use-{user.pk}", actor=Actor.system()
        )
        request_at = credit_at = None
        deadline = start + 10
        while (request_at is None or credit_at is None) and time.time() < deadline:
            if request_at is None:
                for request in fake.received_requests()[seen:]:
                    if request["path"] == "/v1/payment_intents" and request["method"] == "POST":
                        request_at = request["time"]
            if credit_at is None:
                entry = LedgerEntry.objects.filter(
                    wallet__billing_account=account, kind="TOP_UP", memo="Auto-recharge"
                ).first()
                credit_at = entry.created_at.timestamp() if entry else None
            time.sleep(0.005)
        if request_at is None or credit_at is None:
            raise RuntimeError(f"run {run}: no recharge within 10 s")
        to_request.append(request_at - start)
        to_credit.append(credit_at - start)
    return to_request, to_credit


if __name__ == "__main__":
    main()
