"""Signed Stripe webhook deliveries handled per second (gunicorn, PostgreSQL), half of them
duplicates, beside a trivial Django view on the same server in the same run.

    .venv/bin/python bench/webhook.py [--payments 1000] [--rounds 3] [--clients 8] [--workers 4]

Needs PostgreSQL (BENCH_DATABASE_URL) and Redis (BENCH_REDIS_URL, default db 12) as the broker.

Target (restated in issue 12): the full webhook, duplicates included, at 0.5× or better of the
verify-and-store bound measured in the same run (new events that are only verified and stored,
credited nowhere). The trivial view is printed beside both, as before.

Each round times the trivial view, then `--payments` new `checkout.session.completed` events,
then the same events again (duplicates), then as many other new events sent to a bench-only
view that only verifies and stores them (bench/webhook_bound.py: the upper bound for a webhook
that queues its processing), then the trivial view again; the ratio is taken within the round
and the median round is reported, because this small shared machine's speed drifts between
seconds. Beside each phase it prints the CPU time per request spent by gunicorn,
PostgreSQL and the client processes, read from /proc, and it times the database work a new event
needs on its own (raw psycopg, no HTTP): that floor shows how much of the budget is left.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import random
import resource
import statistics
import time
import uuid
from pathlib import Path

import redis
from _setup import bench_database_url, django_setup, start_gunicorn

TICKS = os.sysconf("SC_CLK_TCK")
BROKER_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


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


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by PostgreSQL's and gunicorn's processes, and by our finished
    client processes."""
    used = {"postgres": 0.0, "gunicorn": 0.0}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        group = (
            "postgres" if name.startswith("postgres") else "gunicorn" if "gunicorn" in name else ""
        )
        if group:
            used[group] += (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used["clients"] = children.ru_utime + children.ru_stime
    return used


class Phase:
    """One timed phase: requests per second and CPU milliseconds per request by process."""

    def __init__(self, jobs: list, clients: int) -> None:
        requests = sum(j[2] if isinstance(j[2], int) else len(j[2]) for j in jobs)
        before = _cpu_seconds()
        with multiprocessing.get_context("fork").Pool(clients) as pool:
            start = time.perf_counter()
            results = pool.map(_client, jobs)
            elapsed = time.perf_counter() - start
        after = _cpu_seconds()
        self.ok = sum(r[0] for r in results)
        self.failed = sum(r[1] for r in results)
        self.rate = requests / elapsed
        self.cpu_ms = {k: (after[k] - before[k]) * 1000 / requests for k in before}

    def cpu(self) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in self.cpu_ms.items())


def database_floor(database_url: str, events: int, clients: int) -> float:
    """New events per second for the database work alone, raw psycopg on `clients`
    connections: store the event (commit), then lock the top-up, move the balance and write the
    entry in one statement, mark the top-up and the event, and commit. Scratch tables."""
    import psycopg

    tables = "bench_floor_event, bench_floor_wallet, bench_floor_entry, bench_floor_topup"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {tables}")
        conn.execute(
            "CREATE TABLE bench_floor_event (id text PRIMARY KEY, status text, payload jsonb)"
        )
        conn.execute("CREATE TABLE bench_floor_wallet (id int PRIMARY KEY, balance bigint)")
        conn.execute(
            "CREATE TABLE bench_floor_entry (id bigserial PRIMARY KEY, wallet_id int, "
            "amount bigint, balance_after bigint, transaction_id text UNIQUE)"
        )
        conn.execute("CREATE TABLE bench_floor_topup (id int PRIMARY KEY, state text, pi text)")
        conn.execute("INSERT INTO bench_floor_wallet VALUES (1, 0)")
        conn.execute(
            "INSERT INTO bench_floor_topup SELECT n, 'PENDING', NULL FROM generate_series(1, %s) n",
            [events],
        )
    per_client = events // clients
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        start = time.perf_counter()
        pool.map(
            _floor_client,
            [(database_url, 1 + n * per_client, per_client) for n in range(clients)],
        )
        elapsed = time.perf_counter() - start
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {tables}")
    return per_client * clients / elapsed


def _floor_client(args: tuple[str, int, int]) -> None:
    import psycopg

    database_url, first, count = args
    with psycopg.connect(database_url, autocommit=True) as conn:
        for top_up in range(first, first + count):
            event, payment = f"evt_{uuid.uuid4().hex}", f"pi_{uuid.uuid4().hex}"
            conn.execute("SELECT status FROM bench_floor_event WHERE id = %s", [event])
            conn.execute(
                "INSERT INTO bench_floor_event VALUES (%s, 'RECEIVED', '{}') ON CONFLICT DO NOTHING",
                [event],
            )
            with conn.transaction():
                conn.execute("SELECT id FROM bench_floor_topup WHERE id = %s FOR UPDATE", [top_up])
                conn.execute(
                    "WITH moved AS (UPDATE bench_floor_wallet SET balance = balance + 1 WHERE id = 1 "
                    "RETURNING id, balance) INSERT INTO bench_floor_entry "
                    "(wallet_id, amount, balance_after, transaction_id) "
                    "SELECT id, 1, balance, %s FROM moved",
                    [payment],
                )
                conn.execute(
                    "UPDATE bench_floor_topup SET state = 'SUCCEEDED', pi = %s WHERE id = %s",
                    [payment, top_up],
                )
                conn.execute(
                    "UPDATE bench_floor_event SET status = 'PROCESSED' WHERE id = %s", [event]
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=1000, help="new events per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    # Offline mode signs with a secret derived from the Django secret key: the same key here and
    # in gunicorn (which inherits the environment) makes the server accept what this signs.
    os.environ["DJANGO_SECRET_KEY"] = "bench-webhook-" + uuid.uuid4().hex
    database_url = bench_database_url()
    django_setup(database_url)
    from django.core.management import call_command

    from accounts.models import User
    from billing.billing_accounts.services import billing_account_get_or_create
    from billing.billing_type.services import billing_type_set
    from billing.models import BillingTypeChange, TopUp, Wallet
    from billing.offline import offline_checkout_event

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
    per_client = args.payments // args.clients

    def signed_deliveries() -> list[tuple[bytes, str]]:
        top_ups = TopUp.objects.bulk_create(
            TopUp(
                billing_account=account,
                currency="USD",
                amount=10**9,
                stripe_checkout_session_id=f"cs_bench_{uuid.uuid4().hex}",
            )
            for _ in range(per_client * args.clients)
        )
        deliveries = [offline_checkout_event(top_up=t, paid=True) for t in top_ups]
        random.Random(4).shuffle(deliveries)  # noqa: S311 - a fixed order, not a secret
        return deliveries

    def webhook_jobs(deliveries: list, path: str = "/stripe/webhook/") -> list:
        return [
            (port, path, deliveries[n * per_client : (n + 1) * per_client])
            for n in range(args.clients)
        ]

    rounds = [signed_deliveries() for _ in range(args.rounds)]
    stored_only = [signed_deliveries() for _ in range(args.rounds)]
    broker = redis.Redis.from_url(BROKER_URL)
    broker.flushdb()
    gunicorn, port = start_gunicorn(
        database_url,
        args.workers,
        {
            # The portal's settings and URLs, plus the bench-only verify-and-store view.
            "DJANGO_SETTINGS_MODULE": "settings_bound",
            "PYTHONPATH": str(Path(__file__).parent),
            # As in production (which refuses to start without a broker): what a credit sets
            # off after its commit (the receipt) is published for a worker, not run in the
            # request. Nothing consumes it here; the queue is emptied at the end.
            "CELERY_BROKER_URL": BROKER_URL,
        },
    )
    trivial_jobs = [(port, "/healthz", per_client)] * args.clients
    results = []
    try:
        for deliveries, other in zip(rounds, stored_only, strict=True):
            trivial_a = Phase(trivial_jobs, args.clients)
            new = Phase(webhook_jobs(deliveries), args.clients)
            again = Phase(webhook_jobs(deliveries), args.clients)
            stored = Phase(webhook_jobs(other, "/bench/verify-and-store/"), args.clients)
            trivial_b = Phase(trivial_jobs, args.clients)
            results.append((trivial_a, new, again, stored, trivial_b))
    finally:
        gunicorn.terminate()
        gunicorn.wait()
        queued = sum(
            broker.llen(key) for key in broker.keys("celery*") if broker.type(key) == b"list"
        )
        broker.flushdb()
    floor = database_floor(database_url, per_client * args.clients, args.clients)

    print(
        f"database: {database_url}; gunicorn {args.workers} sync workers, "
        f"{args.clients} client processes, {os.cpu_count()} CPUs"
    )
    ratios, bounds, to_bound = [], [], []
    for n, (trivial_a, new, again, stored, trivial_b) in enumerate(results, 1):
        trivial = (trivial_a.rate + trivial_b.rate) / 2
        # Each event once new and once again: the rate over both halves, duplicates included.
        webhook = 2 / (1 / new.rate + 1 / again.rate)
        bound = 2 / (1 / stored.rate + 1 / again.rate)
        ratios.append(webhook / trivial)
        bounds.append(bound / trivial)
        to_bound.append(webhook / stored.rate)
        print(f"round {n}:")
        print(
            f"  trivial view GET /healthz : {trivial:7.0f} /s          cpu ms/request: {trivial_a.cpu()}"
        )
        print(
            f"  webhook, new events       : {new.rate:7.0f} /s ({new.rate / trivial:.2f}x)  cpu ms/request: {new.cpu()}"
        )
        print(
            f"  webhook, duplicates       : {again.rate:7.0f} /s ({again.rate / trivial:.2f}x)  cpu ms/request: {again.cpu()}"
        )
        print(f"  webhook, both             : {webhook:7.0f} /s ({webhook / trivial:.2f}x)")
        print(
            f"  bound: new events only verified and stored: {stored.rate:7.0f} /s "
            f"({stored.rate / trivial:.2f}x)  cpu ms/request: {stored.cpu()}"
        )
        print(f"  bound: both, new events only stored: {bound:7.0f} /s ({bound / trivial:.2f}x)")
        print(f"  webhook, both / the verify-and-store bound: {webhook / stored.rate:.2f}x")
    median = statistics.median(ratios)
    print(
        f"signed webhook deliveries, duplicates included: median {median:.2f}x the trivial view "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(
        f"the same, beside the verify-and-store bound: median "
        f"{statistics.median(to_bound):.2f}x (rounds: {', '.join(f'{r:.2f}' for r in to_bound)}; "
        "target 0.5x)"
    )
    print(
        f"upper bound for a webhook that queues its processing (verify and store, credit "
        f"nothing), duplicates included: median {statistics.median(bounds):.2f}x"
    )
    print(
        f"database floor for a new event (raw psycopg, {args.clients} connections, no HTTP): "
        f"{floor:.0f} /s"
    )
    ok = sum(p.ok for r in results for p in r[1:3])
    failed = sum(p.failed for r in results for p in r[1:3])
    stored_ok = sum(r[3].ok for r in results)
    balance = Wallet.objects.get(billing_account=account, currency="USD").balance
    credited = TopUp.objects.filter(billing_account=account, state=TopUp.State.SUCCEEDED).count()
    payments = sum(len(d) for d in rounds)
    print(
        f"{ok + failed} deliveries ({payments} payments, each twice): {ok} answered 200, {failed} not"
    )
    print(
        f"credited once each: {credited} top-ups succeeded, balance ${balance / 10**9:,.2f} "
        f"(expected ${payments:,.2f})"
    )
    print(f"verify-and-store bound: {stored_ok} of {sum(len(d) for d in stored_only)} answered 200")
    print(f"tasks published for workers (receipts): {queued}")
    call_command("check_ledger")


if __name__ == "__main__":
    main()
