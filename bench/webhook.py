"""Signed Stripe webhook deliveries handled per second (gunicorn, PostgreSQL), half of them
duplicates, beside a trivial Django view on the same server in the same run.

    .venv/bin/python bench/webhook.py [--payments 1000] [--clients 8] [--workers 4]

Target (issue 4): 0.5× the trivial view or better.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import random
import time
import uuid

from _setup import bench_database_url, django_setup, start_gunicorn

SECRET = "whsec_bench_" + uuid.uuid4().hex


def _client(args: tuple[int, str, list[tuple[bytes, str]] | int]) -> tuple[int, int]:
    """One client process: POST each signed delivery, or GET /healthz n times."""
    port, path, work = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ok = failed = 0
    if isinstance(work, int):
        for _ in range(work):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            ok, failed = (ok + 1, failed) if response.status == 200 else (ok, failed + 1)
    else:
        for payload, signature in work:
            conn.request(
                "POST",
                path,
                payload,
                {"Content-Type": "application/json", "Stripe-Signature": signature},
            )
            response = conn.getresponse()
            response.read()
            ok, failed = (ok + 1, failed) if response.status == 200 else (ok, failed + 1)
    conn.close()
    return ok, failed


def _run(jobs: list, clients: int) -> tuple[float, int, int]:
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        start = time.perf_counter()
        results = pool.map(_client, jobs)
        elapsed = time.perf_counter() - start
    ok = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    return (ok + failed) / elapsed, ok, failed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    database_url = bench_database_url()
    django_setup(database_url)
    from django.conf import settings

    settings.STRIPE_WEBHOOK_SECRET = SECRET  # sign with the same secret the server verifies
    from django.core.management import call_command

    from accounts.models import User
    from billing.models import BillingTypeChange, TopUp, Wallet
    from billing.offline import offline_checkout_event
    from billing.services import billing_account_get_or_create, billing_type_set

    developer, _ = User.objects.get_or_create(
        email=f"bench-webhook-{uuid.uuid4().hex[:8]}@example.com"
    )
    account = billing_account_get_or_create(user=developer)
    billing_type_set(
        account=account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    top_ups = TopUp.objects.bulk_create(
        [
            TopUp(
                billing_account=account,
                currency="USD",
                amount=10**9,
                stripe_checkout_session_id=f"cs_bench_{uuid.uuid4().hex}",
            )
            for _ in range(args.payments)
        ]
    )
    deliveries = [offline_checkout_event(top_up=t, paid=True) for t in top_ups]
    random.Random(4).shuffle(deliveries)  # noqa: S311 - a fixed order, not a secret
    per_client = len(deliveries) // args.clients

    def jobs() -> list:
        return [
            (port, "/stripe/webhook/", deliveries[n * per_client : (n + 1) * per_client])
            for n in range(args.clients)
        ]

    gunicorn, port = start_gunicorn(database_url, args.workers, {"STRIPE_WEBHOOK_SECRET": SECRET})
    try:
        trivial_a, _, trivial_failed = _run(
            [(port, "/healthz", per_client)] * args.clients, args.clients
        )
        first_rate, ok_a, failed_a = _run(jobs(), args.clients)  # every event new
        again_rate, ok_b, failed_b = _run(jobs(), args.clients)  # every event a duplicate
        trivial_b, _, _ = _run([(port, "/healthz", per_client)] * args.clients, args.clients)
    finally:
        gunicorn.terminate()
        gunicorn.wait()
    ok, failed = ok_a + ok_b, failed_a + failed_b
    # Each event once new and once again: the rate over both halves, duplicates included.
    webhook_rate = 2 / (1 / first_rate + 1 / again_rate)
    trivial = (trivial_a + trivial_b) / 2
    balance = Wallet.objects.get(billing_account=account, currency="USD").balance
    credited = TopUp.objects.filter(billing_account=account, state=TopUp.State.SUCCEEDED).count()
    print(
        f"database: {database_url}; gunicorn {args.workers} sync workers, {args.clients} client processes"
    )
    print(
        f"trivial view GET /healthz : {trivial:8.0f} /s  (runs: {trivial_a:.0f}, {trivial_b:.0f}; {trivial_failed} failed)"
    )
    print(
        f"signed webhook deliveries  : {webhook_rate:8.0f} /s  ratio {webhook_rate / trivial:.2f}x trivial (target 0.5x)"
    )
    print(f"  new events only           : {first_rate:8.0f} /s  ({first_rate / trivial:.2f}x)")
    print(f"  duplicates only           : {again_rate:8.0f} /s  ({again_rate / trivial:.2f}x)")
    print(
        f"  {ok + failed} deliveries ({len(top_ups)} payments, each delivered twice): {ok} answered 200, {failed} not"
    )
    print(
        f"  credited once each: {credited} top-ups succeeded, balance ${balance / 10**9:,.2f} "
        f"(expected ${len(top_ups):,.2f})"
    )
    call_command("check_ledger")


if __name__ == "__main__":
    main()
