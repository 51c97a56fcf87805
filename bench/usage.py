"""Usage events rated and debited per second through `usage:batch` (gunicorn, PostgreSQL),
beside a raw batched `INSERT … ON CONFLICT DO NOTHING` of the same rows into a bare table with
the same unique key, in the same run. Prints figures; never a timed test.

    .venv/bin/python bench/usage.py [--batches 40] [--clients 8] [--workers 4] [--developers 8]
                                    [--rounds 3] [--mixed]

Each batch holds 1,000 events, a tenth of them resends of ids sent before (duplicates). By
default each batch carries one developer's events (a gateway batching per key); `--mixed`
shuffles every developer's events into every batch. Target (issue 16): 20,000 events/s and at
least 0.3x the raw insert. Each round times usage:batch, then the raw insert of the same rows;
the ratio is taken within the round and the median round is reported.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import random
import statistics
import time
import uuid
from datetime import UTC, datetime

from _setup import bench_database_url, django_setup, start_gunicorn

BATCH = 1000
DUPLICATES = 100  # per batch


def _client(args: tuple[int, str, list[bytes]]) -> tuple[int, int, int]:
    """POST each batch on one keep-alive connection: (rated, duplicates, anything else)."""
    port, token, bodies = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    rated = duplicate = other = 0
    for body in bodies:
        conn.request("POST", "/v1/organizations/demo-org/usage:batch", body, headers)
        response = conn.getresponse()
        answer = response.read()
        if response.status != 200:
            other += BATCH
            continue
        for result in json.loads(answer)["results"]:
            status = result["status"]
            rated += status == "RATED"
            duplicate += status == "DUPLICATE"
            other += status not in ("RATED", "DUPLICATE")
    conn.close()
    return rated, duplicate, other


def _raw_client(args: tuple[str, list[list[tuple]]]) -> int:
    """Insert each batch with one statement and commit it, as usage:batch commits a batch;
    rows by id, as usage:batch inserts them, so that racing batches cannot deadlock."""
    import psycopg

    database_url, batches = args
    inserted = 0
    with psycopg.connect(database_url) as conn:
        for batch in batches:
            rows = sorted(batch)
            values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
            cursor = conn.execute(
                "INSERT INTO bench_usage_raw (event_id, key, product, time, units) "  # noqa: S608
                f"VALUES {values} ON CONFLICT (event_id) DO NOTHING",
                [field for row in rows for field in row],
            )
            inserted += cursor.rowcount
            conn.commit()
    return inserted


def _batches(keys: list[str], count: int, mixed: bool, rng: random.Random) -> list[list[dict]]:
    """`count` batches of 1,000 events, each with 100 resends of ids sent earlier."""
    now = datetime.now(UTC).isoformat()
    batches: list[list[dict]] = []
    sent: list[dict] = []
    for n in range(count):
        if mixed:
            batch_keys = [keys[i % len(keys)] for i in range(BATCH - DUPLICATES)]
        else:
            batch_keys = [keys[n % len(keys)]] * (BATCH - DUPLICATES)
        new = [
            {"id": uuid.uuid4().hex, "consumerKey": key, "apiproduct": "bench-usage", "time": now}
            for key in batch_keys
        ]
        resent = rng.sample(sent, DUPLICATES) if len(sent) >= DUPLICATES else new[:DUPLICATES]
        batch = new + resent
        rng.shuffle(batch)
        batches.append(batch)
        sent += new
    return batches


def _timed(func, jobs: list, clients: int) -> tuple[float, list]:
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        start = time.perf_counter()
        results = pool.map(func, jobs)
        return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--developers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mixed", action="store_true")
    args = parser.parse_args()

    database_url = bench_database_url()
    django_setup(database_url)
    import psycopg
    from django.contrib.auth.models import Permission

    from accounts.models import User
    from accounts.services import api_token_create
    from billing.billing_accounts.services import billing_account_get_or_create
    from billing.catalog.rates import Band
    from billing.catalog.selectors import api_product_get
    from billing.catalog.services import PlanSpec, ProductSpec, api_product_create, rate_plan_create
    from billing.developer_apps.keys import key_hash, key_new, key_prefix
    from billing.ledger.entries import Actor
    from billing.ledger.services import wallet_credit
    from billing.models import AppKey, DeveloperApp, RatePlan, Subscription
    from billing.money import Money
    from billing.subscriptions.services import subscription_purchase

    product = api_product_get(name="bench-usage")
    if product is None:
        product = api_product_create(
            spec=ProductSpec(name="bench-usage", display_name="Bench usage"), actor=None
        )
        rate_plan_create(
            product=product,
            spec=PlanSpec(
                display_name="Per call",
                currency="USD",
                state=RatePlan.State.PUBLISHED,
                consumption_pricing_type="FIXED_PER_UNIT",
                bands=[Band(0, 0, 1000)],  # a millionth of a dollar a call
            ),
            actor=None,
        )
    keys = []
    for n in range(args.developers):
        developer, _ = User.objects.get_or_create(email=f"bench-usage-{n}@example.com")
        account = billing_account_get_or_create(user=developer)
        wallet_credit(
            account=account,
            money=Money(10**15, "USD"),
            transaction_id=f"bench-usage-{uuid.uuid4()}",
            actor=Actor.system(),
        )
        if not Subscription.objects.filter(
            billing_account=account, product=product, end_time__isnull=True
        ).exists():
            subscription_purchase(account=account, product=product, actor=Actor.system())
        app, _ = DeveloperApp.objects.get_or_create(billing_account=account, name="bench-usage")
        app.api_products.add(product)
        raw = key_new()
        AppKey.objects.create(app=app, prefix=key_prefix(raw), key_hash=key_hash(raw))
        keys.append(raw)
    gateway, _ = User.objects.get_or_create(email="bench-gateway@example.com")
    gateway.user_permissions.add(Permission.objects.get(codename="report_usage"))
    _, token = api_token_create(user=gateway, name=f"bench-{uuid.uuid4().hex[:6]}")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_usage_raw")
        conn.execute(
            "CREATE TABLE bench_usage_raw (id bigserial PRIMARY KEY, event_id varchar(255) "
            "UNIQUE, key text, product text, time timestamptz, units bigint)"
        )

    rng = random.Random(16)  # noqa: S311 - shuffles a benchmark, nothing secret
    gunicorn, port = start_gunicorn(database_url, args.workers)
    ratios, rates = [], []
    try:
        for n in range(1, args.rounds + 1):
            batches = _batches(keys, args.batches, args.mixed, rng)
            events = sum(len(b) for b in batches)
            shares = [batches[i :: args.clients] for i in range(args.clients)]
            bodies = [[json.dumps({"events": b}).encode() for b in share] for share in shares]
            elapsed, results = _timed(
                _client, [(port, token, share) for share in bodies], args.clients
            )
            rated = sum(r[0] for r in results)
            duplicate = sum(r[1] for r in results)
            other = sum(r[2] for r in results)
            rate = events / elapsed
            rows = [
                [(e["id"], e["consumerKey"], e["apiproduct"], e["time"], 1) for e in batch]
                for batch in batches
            ]
            raw_elapsed, _ = _timed(
                _raw_client,
                [(database_url, rows[i :: args.clients]) for i in range(args.clients)],
                args.clients,
            )
            raw_rate = events / raw_elapsed
            ratios.append(rate / raw_rate)
            rates.append(rate)
            print(
                f"round {n}: usage:batch {rate:7.0f} events/s ({rated} rated, {duplicate} "
                f"duplicates, {other} other); raw insert {raw_rate:7.0f} rows/s; "
                f"{rate / raw_rate:.2f}x"
            )
    finally:
        gunicorn.terminate()
        gunicorn.wait()
    print(
        f"usage:batch: median {statistics.median(rates):.0f} events/s (target 20,000), "
        f"{statistics.median(ratios):.2f}x the raw insert (target 0.3x); "
        f"{'mixed' if args.mixed else 'one developer per batch'}, {args.developers} developers, "
        f"gunicorn {args.workers} workers, {args.clients} clients, 1,000-event batches"
    )


if __name__ == "__main__":
    main()
