"""Usage under real concurrency on PostgreSQL: N events of one subscription, in any order and
any split over 8 concurrent clients, resends included, cost exactly the banded price of N calls,
and each event is charged once."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Sum

from billing.catalog.rates import Band
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import LedgerEntry, UsageCounter, UsageEvent, Wallet
from billing.money import Money
from billing.subscriptions.services import subscription_purchase
from billing.usage import ingest
from billing.usage.ingest import UsageResult, usage_batch_record
from billing.usage.rating import charge
from tests.billing.usage.helpers import app_with_key, report
from tests.conftest import NANOS_PER_UNIT
from tests.factories import ApiProductFactory, DeveloperFactory, published_plan

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


# ---- A batch meeting another batch still running with the same event ids ----


def _waiting_on_locks(count: int) -> None:
    """Wait until `count` other connections to the test database wait for a lock."""
    for _ in range(400):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else read once a transaction
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] >= count:
                return
        time.sleep(0.025)
    raise AssertionError(f"{count} connections never waited for a lock")


class _Held:
    """Batches sent from threads while the test holds a wallet row, so that the first one
    stays in flight (its counters taken, its events not yet stored) until `release`."""

    def __init__(self) -> None:
        self.answers: dict[str, list[UsageResult]] = {}
        self.inserts: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def hold(self, account) -> None:
        """Lock the account's wallet, in a transaction `release` ends."""
        wallet_credit(account=account, money=Money(10**12, "USD"), transaction_id="held",
                      actor=Actor.system())  # fmt: skip
        transaction.set_autocommit(False)
        Wallet.objects.select_for_update().get(billing_account=account)

    def send(self, name: str, batch: list) -> None:
        def client() -> None:
            try:
                self.answers[name] = usage_batch_record(events=batch, actor=Actor.system())
            except BaseException as exc:  # noqa: BLE001 - reported by `release`
                self.errors.append(exc)
            finally:
                connection.close()

        thread = threading.Thread(target=client, name=name)
        self.threads.append(thread)
        thread.start()

    def count_inserts(self, real_insert):
        def insert(events):
            self.inserts[threading.current_thread().name] += 1
            return real_insert(events)

        return insert

    def release(self) -> None:
        connection.commit()
        transaction.set_autocommit(True)
        for thread in self.threads:
            thread.join(60)
        assert not self.errors, self.errors


@pytest.fixture
def held(postgres, monkeypatch):
    held = _Held()
    monkeypatch.setattr(ingest, "_insert", held.count_inserts(ingest._insert))
    yield held
    if not connection.get_autocommit():  # the test failed before `release`
        connection.rollback()
        transaction.set_autocommit(True)
        for thread in held.threads:  # so that none writes during the next test's set-up
            thread.join(60)


def test_a_resend_of_a_batch_still_running_waits_for_it_and_is_not_redone(held, developer):
    """The resent batch waits on the first one's counters, then finds its events stored: each
    is a duplicate, charged once, and the resend neither counts nor stores anything."""
    product = ApiProductFactory(name="weather-api")
    published_plan(product, consumption_pricing_type="BANDED", bands=BANDS)
    subscription_purchase(account=developer.billing_account, product=product, actor=Actor.system())
    _, _, key = app_with_key(developer.billing_account, product)
    batch = [report(f"ev-{n}", key, "weather-api") for n in range(5)]

    held.hold(developer.billing_account)
    held.send("first", batch)
    _waiting_on_locks(1)  # the first holds its counters and waits for the wallet
    held.send("resend", batch)
    _waiting_on_locks(2)  # the resend waits for the first's counters
    held.release()

    assert [r.status for r in held.answers["first"]] == ["RATED"] * 5
    assert [r.status for r in held.answers["resend"]] == ["DUPLICATE"] * 5
    assert held.inserts == Counter({"first": 1})  # the resend stored nothing, not even once
    assert UsageCounter.objects.get().calls == 5  # one counter: the month
    assert LedgerEntry.objects.filter(kind="USAGE").count() == 1
    call_command("check_ledger")


def test_an_id_stored_meanwhile_under_another_key_is_a_duplicate_and_the_rest_is_redone(
    held, developer
):
    """Where two batches share no counter, a batch meets the other's event only when it
    stores its own: it is rolled back and redone without it, so its other events are numbered
    from 1, no call spent on the duplicate."""
    product = ApiProductFactory(name="weather-api")
    published_plan(product, consumption_pricing_type="BANDED", bands=BANDS)
    other = DeveloperFactory().billing_account
    for account in (developer.billing_account, other):
        subscription_purchase(account=account, product=product, actor=Actor.system())
    _, _, first_key = app_with_key(developer.billing_account, product)
    _, _, other_key = app_with_key(other, product)

    held.hold(developer.billing_account)
    held.send("first", [report("shared-id", first_key, "weather-api"),
                        report("own-id", first_key, "weather-api", units=3)])  # fmt: skip
    _waiting_on_locks(1)  # counted and rated, waiting for the wallet
    held.send("other", [report("shared-id", other_key, "weather-api")])
    held.threads[-1].join(60)  # stored and committed meanwhile
    held.release()

    assert [r.status for r in held.answers["other"]] == ["RATED"]
    assert [r.status for r in held.answers["first"]] == ["DUPLICATE", "RATED"]
    assert held.inserts["first"] == 2  # rolled back once, then redone
    own = UsageEvent.objects.get(event_id="own-id")
    assert (own.first_call, own.units, own.charge_nanos) == (1, 3, 3 * 10 * CENT)
    assert UsageCounter.objects.get(subscription=own.subscription).calls == 3
    assert UsageEvent.objects.get(event_id="shared-id").subscription.billing_account == other
    call_command("check_ledger")
