"""Debits per second through the service layer and through HTTP (gunicorn, PostgreSQL), each
beside a raw single-row `UPDATE … SET balance = balance - 1` on the same database in this run.

    .venv/bin/python bench/ledger.py [--debits 3000] [--http-requests 3000] [--clients 8]
                                     [--developers 8]

Targets: the service layer at 0.35× raw or better (issue 3); HTTP balance:debit at 0.3× the
trivial `/healthz` on the same server, timed just before and just after it (issue 16). HTTP
debits are timed twice: spread over `--developers` developers (one a client at most), as a
gateway's traffic is, and all on one developer, every client waiting for the same wallet row
(the worst case). Then how fast the debits' credit lots are counted after the fact (issue 17).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import threading
import time
import uuid

from _setup import bench_database_url, django_setup, healthz_rate, start_gunicorn


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def raw_updates(database_url: str, wallet_id: int, count: int, clients: int = 1) -> float:
    """The baseline: the cheapest possible balance change, one autocommit UPDATE each."""
    import psycopg

    def work(n: int) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for _ in range(n):
                conn.execute(
                    "UPDATE billing_wallet SET balance = balance - 1 WHERE id = %s", [wallet_id]
                )

    threads = [threading.Thread(target=work, args=(count // clients,)) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    # Put the nanos back through the ledger is not needed: the bench wallet is scratch, but keep
    # check_ledger honest by restoring the exact balance.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE billing_wallet SET balance = balance + %s WHERE id = %s",
            [count // clients * clients, wallet_id],
        )
    return rate(count // clients * clients, elapsed)


def service_debits(account, count: int) -> float:
    from billing.ledger.entries import Actor
    from billing.ledger.services import wallet_debit
    from billing.money import Money

    run = uuid.uuid4().hex[:8]
    start = time.perf_counter()
    for n in range(count):
        wallet_debit(
            account=account,
            money=Money(1000, "USD"),
            transaction_id=f"bench-{run}-{n}",
            actor=Actor.system(),
        )
    return rate(count, time.perf_counter() - start)


def _http_client(args: tuple[int, str, str, int, str]) -> int:
    """One client process: keep-alive where the server allows it; returns non-200 answers."""
    port, token, path, count, prefix = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    errors = 0
    for n in range(count):
        body = json.dumps(
            {
                "transactionAmount": {"currencyCode": "USD", "units": "0", "nanos": 1000},
                "transactionId": f"{prefix}-{n}",
            }
        )
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        response.read()
        errors += response.status != 200
    conn.close()
    return errors


def http_debits(
    port: int, token: str, emails: list[str], count: int, clients: int
) -> tuple[float, int]:
    """Client processes, not threads, so the load generator is not held back by one GIL; each
    client debits one of `emails` (in turn)."""
    run = uuid.uuid4().hex[:8]
    jobs = [
        (
            port,
            token,
            f"/v1/organizations/demo-org/developers/{emails[w % len(emails)]}/balance:debit",
            count // clients,
            f"http-{run}-{w}",
        )
        for w in range(clients)
    ]
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        start = time.perf_counter()
        errors = sum(pool.map(_http_client, jobs))
        elapsed = time.perf_counter() - start
    return rate(count // clients * clients, elapsed), errors


def lots_counting(database_url: str, wallet_id: int) -> tuple[int, float, float]:
    """Credit lots are counted after the fact (billing/expiry/lots.py), not on each debit: the
    entries this run made, counted at once, beside a raw read of the same entries."""
    import psycopg

    from billing.expiry.lots import lots_count
    from billing.models import Wallet

    through = Wallet.objects.get(pk=wallet_id).lots_counted_through
    with psycopg.connect(database_url, autocommit=True) as conn:
        start = time.perf_counter()
        rows = conn.execute(
            "SELECT id, kind, amount, balance_after, created_at, lot_id FROM billing_ledgerentry "
            "WHERE wallet_id = %s AND id > %s ORDER BY id",
            [wallet_id, through],
        ).fetchall()
        raw = rate(len(rows), time.perf_counter() - start)
    start = time.perf_counter()
    lots_count(wallet_id=wallet_id)
    return len(rows), rate(len(rows), time.perf_counter() - start), raw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--debits", type=int, default=3000)
    parser.add_argument("--http-requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--developers", type=int, default=8)
    args = parser.parse_args()
    # Each client debits one developer: more developers than clients would sit idle.
    args.developers = max(1, min(args.developers, args.clients))

    database_url = bench_database_url()
    django_setup(database_url)
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from accounts.models import User
    from accounts.services import api_token_create
    from billing.billing_accounts.services import billing_account_get_or_create
    from billing.billing_type.services import billing_type_set
    from billing.ledger.entries import Actor
    from billing.ledger.services import wallet_credit
    from billing.models import BillingTypeChange, Wallet
    from billing.money import Money

    def prepaid_account(email: str):
        developer, _ = User.objects.get_or_create(email=email)
        account = billing_account_get_or_create(user=developer)
        if account.billing_type != "PREPAID":
            billing_type_set(
                account=account,
                billing_type="PREPAID",
                changed_by=None,
                source=BillingTypeChange.Source.ADMIN,
            )
            account.refresh_from_db()
        wallet_credit(
            account=account,
            money=Money(10**15, "USD"),
            transaction_id=f"bench-{uuid.uuid4()}",
            actor=Actor.system(),
        )
        return developer, account

    developer, account = prepaid_account("bench-developer@example.com")
    spread = [developer.email] + [
        prepaid_account(f"bench-developer-{n}@example.com")[0].email
        for n in range(1, args.developers)
    ]
    wallet_id = Wallet.objects.get(billing_account=account, currency="USD").pk
    gateway, _ = User.objects.get_or_create(
        email="bench-gateway@example.com", defaults={"is_staff": True}
    )
    gateway.groups.add(Group.objects.get(name="Portal admin"))
    _, token = api_token_create(user=gateway, name="bench")

    print(f"database: {database_url}")
    raw_1 = raw_updates(database_url, wallet_id, args.debits)
    service = service_debits(account, args.debits)
    raw_1b = raw_updates(database_url, wallet_id, args.debits)
    raw_seq = (raw_1 + raw_1b) / 2
    print(f"raw UPDATE, 1 connection      : {raw_seq:8.0f} /s  (runs: {raw_1:.0f}, {raw_1b:.0f})")
    print(
        f"wallet_debit service, 1 process: {service:8.0f} /s  ratio {service / raw_seq:.2f}x raw (target 0.35x)"
    )

    gunicorn, port = start_gunicorn(database_url, args.workers)
    try:
        before = healthz_rate(port, args.http_requests, args.clients)
        spread_rate, spread_errors = http_debits(
            port, token, spread, args.http_requests, args.clients
        )
        between = healthz_rate(port, args.http_requests, args.clients)
        one_rate, one_errors = http_debits(
            port, token, [developer.email], args.http_requests, args.clients
        )
        after = healthz_rate(port, args.http_requests, args.clients)
    finally:
        gunicorn.terminate()
        gunicorn.wait()
    raw_c = raw_updates(database_url, wallet_id, args.http_requests, args.clients)
    print(f"raw UPDATE of one row, {args.clients} connections: {raw_c:8.0f} /s")
    print(f"HTTP balance:debit, gunicorn {args.workers} workers, {args.clients} clients:")
    for label, http_rate, errors, trivial in (
        (f"{args.developers} developers", spread_rate, spread_errors, (before + between) / 2),
        ("one developer", one_rate, one_errors, (between + after) / 2),
    ):
        print(
            f"  {label:14s}: {http_rate:6.0f} /s ({errors} non-200 answers); /healthz on the "
            f"same server {trivial:6.0f} /s; balance:debit at {http_rate / trivial:.2f}x of it "
            "(target 0.3x)"
        )
    entries, counted, raw_read = lots_counting(database_url, wallet_id)
    print(
        f"credit lots counted after the fact: {entries} entries at {counted:8.0f} /s "
        f"(raw read of the same entries: {raw_read:8.0f} /s; a debit itself writes no lot)"
    )
    call_command("check_ledger")


if __name__ == "__main__":
    main()
