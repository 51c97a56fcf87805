"""`limitsCheck` requests per second and their p99 latency, beside the trivial `/healthz` on
the same gunicorn server in the same run (PostgreSQL). Prints figures; never a timed test.

    .venv/bin/python bench/limits.py [--requests 4000] [--clients 8] [--workers 4] [--rounds 3]

Target (issue 16): limitsCheck at 0.4x or better of /healthz, p99 under 20 ms. Each round times
/healthz, then limitsCheck, then /healthz again; the ratio is taken within the round (this small
shared machine's speed drifts) and the median round is reported.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import time
import uuid

from _setup import bench_database_url, django_setup, start_gunicorn


def _client(args: tuple[int, str, str, bytes | None, int]) -> tuple[list[float], int]:
    """One client process with a keep-alive connection: each request's latency, and how many
    answers were not 200."""
    port, method, path, body, count = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if body is not None:
        headers["Authorization"] = f"Bearer {json.loads(body)['_token']}"
        body = json.dumps({k: v for k, v in json.loads(body).items() if k != "_token"}).encode()
    latencies, errors = [], 0
    for _ in range(count):
        start = time.perf_counter()
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - start)
        errors += response.status != 200
    conn.close()
    return latencies, errors


def phase(port: int, method: str, path: str, body: bytes | None, total: int, clients: int):
    jobs = [(port, method, path, body, total // clients)] * clients
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        start = time.perf_counter()
        results = pool.map(_client, jobs)
        elapsed = time.perf_counter() - start
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return len(latencies) / elapsed, p99, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    database_url = bench_database_url()
    django_setup(database_url)
    from django.contrib.auth.models import Permission

    from accounts.models import User
    from accounts.services import api_token_create
    from billing.billing_accounts.services import billing_account_get_or_create
    from billing.catalog.selectors import api_product_get
    from billing.catalog.services import PlanSpec, ProductSpec, api_product_create, rate_plan_create
    from billing.developer_apps.keys import key_hash, key_new, key_prefix
    from billing.ledger.entries import Actor
    from billing.models import AppKey, DeveloperApp, RatePlan, Subscription
    from billing.subscriptions.services import subscription_purchase

    product = api_product_get(name="bench-limits")
    if product is None:
        product = api_product_create(
            spec=ProductSpec(
                name="bench-limits", display_name="Bench", quota=10**9, quota_time_unit="day"
            ),
            actor=None,
        )
        rate_plan_create(
            product=product,
            spec=PlanSpec(display_name="Free", currency="USD", state=RatePlan.State.PUBLISHED),
            actor=None,
        )
    developer, _ = User.objects.get_or_create(email="bench-limits-developer@example.com")
    account = billing_account_get_or_create(user=developer)
    if not Subscription.objects.filter(billing_account=account, end_time__isnull=True).exists():
        subscription_purchase(account=account, product=product, actor=Actor.system())
    app, _ = DeveloperApp.objects.get_or_create(billing_account=account, name="bench")
    app.api_products.add(product)
    raw = key_new()
    AppKey.objects.create(app=app, prefix=key_prefix(raw), key_hash=key_hash(raw))
    gateway, _ = User.objects.get_or_create(email="bench-gateway@example.com")
    gateway.user_permissions.add(Permission.objects.get(codename="report_usage"))
    _, token = api_token_create(user=gateway, name=f"bench-{uuid.uuid4().hex[:6]}")
    body = json.dumps({"consumerKey": raw, "apiproduct": "bench-limits", "_token": token}).encode()

    gunicorn, port = start_gunicorn(database_url, args.workers)
    ratios, p99s = [], []
    try:
        for n in range(1, args.rounds + 1):
            before, _, _ = phase(port, "GET", "/healthz", None, args.requests, args.clients)
            rate, p99, errors = phase(
                port,
                "POST",
                "/v1/organizations/demo-org/limitsCheck",
                body,
                args.requests,
                args.clients,
            )
            after, healthz_p99, _ = phase(
                port, "GET", "/healthz", None, args.requests, args.clients
            )
            trivial = (before + after) / 2
            ratios.append(rate / trivial)
            p99s.append(p99)
            print(
                f"round {n}: /healthz {trivial:6.0f} /s (p99 {healthz_p99:.1f} ms); "
                f"limitsCheck {rate:6.0f} /s = {rate / trivial:.2f}x, p99 {p99:.1f} ms, "
                f"{errors} non-200"
            )
    finally:
        gunicorn.terminate()
        gunicorn.wait()
    print(
        f"limitsCheck beside /healthz: median {statistics.median(ratios):.2f}x "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}; target 0.4x), "
        f"p99 median {statistics.median(p99s):.1f} ms (target < 20 ms); "
        f"gunicorn {args.workers} workers, {args.clients} clients"
    )


if __name__ == "__main__":
    main()
