"""Usage under real concurrency on PostgreSQL: N events of one subscription, in any order and
any split over 8 concurrent clients, resends included, cost exactly the banded price of N calls,
and each event is charged once."""

from __future__ import annotations

import random
import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum

from billing.catalog.rates import Band
from billing.ledger.entries import Actor
from billing.models import LedgerEntry, UsageCounter, UsageEvent, Wallet
from billing.subscriptions.services import subscription_purchase
from billing.usage.ingest import UsageResult, usage_batch_record
from billing.usage.rating import charge
from tests.billing.usage.helpers import app_with_key, report
from tests.conftest import NANOS_PER_UNIT
from tests.factories import ApiProductFactory, published_plan

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CENT = NANOS_PER_UNIT // 100
BANDS = [Band(0, 10, 10 * CENT), Band(10, 100, 5 * CENT), Band(100, 0, 3 * CENT)]
CLIENTS = 8


def run_clients(batches_per_client: list[list[list]]) -> list[UsageResult]:
    """Each client in its own thread (its own connection), all released at once; each sends
    its batches one after another."""
    barrier = threading.Barrier(len(batches_per_client))
    results: list[UsageResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(batches: list[list]) -> None:
        barrier.wait()
        try:
            for batch in batches:
                answered = usage_batch_record(events=batch, actor=Actor.system())
                with lock:
                    results.extend(answered)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(b,)) for b in batches_per_client]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return results


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_concurrent_clients_charge_exactly_the_banded_price(postgres, developer, seed):
    rng = random.Random(seed)
    product = ApiProductFactory(name="weather-api", quota=10_000, quota_time_unit="day")
    published_plan(product, consumption_pricing_type="BANDED", bands=BANDS)
    account = developer.billing_account
    subscription = subscription_purchase(
        account=account, product=product, actor=Actor.system()
    ).subscription
    _, _, key = app_with_key(account, product)
    units = {f"ev-{n}": rng.choice([1, 1, 1, 2, 5]) for n in range(300)}
    events = [report(i, key, "weather-api", units=u) for i, u in units.items()]
    rng.shuffle(events)
    shares = [events[n::CLIENTS] for n in range(CLIENTS)]
    # Each client also resends a tenth of another client's events: racing duplicates.
    for n, share in enumerate(shares):
        share += rng.sample(shares[(n + 1) % CLIENTS][: len(share)], len(share) // 10)
    batches = [[share[i : i + 7] for i in range(0, len(share), 7)] for share in shares]

    results = run_clients(batches)

    calls = sum(units.values())
    expected = charge([b.as_json() for b in BANDS], 1, calls, Decimal(1)).charge_nanos
    rated = Counter(r.event_id for r in results if r.status == "RATED")
    assert rated == Counter(dict.fromkeys(units, 1))  # every event rated once, no more
    assert {r.status for r in results} == {"RATED", "DUPLICATE"}
    assert sum(r.charge.nanos for r in results if r.status == "RATED") == expected
    stored = UsageEvent.objects.filter(subscription=subscription)
    assert stored.aggregate(total=Sum("charge_nanos"))["total"] == expected
    # The calls are numbered 1..calls with no gap and no overlap.
    numbered = sorted(
        n for first, u in stored.values_list("first_call", "units") for n in range(first, first + u)
    )
    assert numbered == list(range(1, calls + 1))
    month, quota = UsageCounter.objects.filter(subscription=subscription).order_by("period")
    assert (month.calls, quota.calls) == (calls, calls)
    debited = LedgerEntry.objects.filter(kind="USAGE").aggregate(total=Sum("amount"))["total"]
    assert debited == -expected
    assert not stored.filter(ledger_entry__isnull=True).exists()
    assert Wallet.objects.get().balance == -expected
    call_command("check_ledger")
