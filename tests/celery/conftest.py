"""Auto-recharge end to end: a real `celery worker` process, a real Redis broker, PostgreSQL and
the fake Stripe in its own process.

The test process enqueues through the same Redis as the worker (settings and the Celery app's
broker connections are switched for the test, then put back); the worker reads the pytest
PostgreSQL test database and sends its emails to files the tests read. Without
TEST_DATABASE_URL or TEST_REDIS_URL the tests skip with the reason (fail with REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import stripe
from django.conf import settings as django_settings
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from billing.auto_recharge.settings import auto_recharge_configure
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import AutoRecharge, BillingAccount, LedgerEntry
from billing.money import Money
from billing.payments.cards import card_save
from portal.celery import app as celery_app
from tests.conftest import NANOS_PER_UNIT, forget_broker_connections, require
from tests.fakes.stripe_server import FakeStripeProcess, signed_event

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_test_celery_integration"
WEBHOOK_SECRET = "whsec_celery_integration"
REDIS_REASON = "needs Redis: set TEST_REDIS_URL"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

OPENING = 30 * NANOS_PER_UNIT
THRESHOLD = 20 * NANOS_PER_UNIT
RECHARGE = 50 * NANOS_PER_UNIT
CARD = "pm_card_visa"
# auto_recharge_configure asks a worker once whether a recharge is already due ("not due").
CONFIGURE_TASKS = 1

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    what: str,
    timeout: float = 20.0,
    workers: tuple = (),
) -> T:
    """Poll `condition` until it returns something truthy; fail with the workers' logs, at
    once if a task crashed in one of them."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for worker in workers:
            worker.check_no_task_crashed()
        if time.monotonic() > deadline:
            logs = "\n".join(worker.tail() for worker in workers)
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{logs}")
        time.sleep(0.05)


def database_url() -> str:
    """The pytest test database (not the configured one), for processes the test starts."""
    s = connection.settings_dict
    user = urllib.parse.quote(s["USER"] or "", safe="")
    password = f":{urllib.parse.quote(s['PASSWORD'], safe='')}" if s["PASSWORD"] else ""
    return f"postgres://{user}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def payment_intent_creates(fake: FakeStripeProcess) -> list[dict[str, Any]]:
    return [
        r
        for r in fake.received_requests()
        if (r["method"], r["path"]) == ("POST", "/v1/payment_intents")
    ]


def deliver_webhook(client: Client, event: dict[str, Any]) -> HttpResponse:
    """POST an event to the webhook as Stripe does: raw JSON body, real signature."""
    payload, signature = signed_event(event, WEBHOOK_SECRET)
    return client.generic(
        "POST",
        reverse("stripe_webhook"),
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    )


def read_mails(mail_dir: Path) -> list[str]:
    """Messages written by the workers' file email backend (one file per connection), oldest
    first (the file names order by second only)."""
    separator = "-" * 79
    messages = []
    for path in sorted(mail_dir.glob("*.log"), key=lambda path: path.stat().st_mtime_ns):
        messages += [m.strip() for m in path.read_text().split(separator) if m.strip()]
    # Receipts for the recharges that succeed are tested in tests/webhooks/test_receipts*.py.
    return [m for m in messages if "Subject: [Developer portal] Receipt:" not in m]


@pytest.fixture(autouse=True)
def stay_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stripe library honours proxy variables: none may apply here, nor in the worker."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setattr(stripe, "enable_telemetry", False)


# ---- services: Redis, the fake Stripe ----


@dataclass
class Broker:
    url: str
    client: redis.Redis

    def unacked(self) -> int:
        """Messages a worker took but has not acknowledged (acks_late: still running or lost)."""
        return self.client.hlen("unacked")

    def oldest_unacked_age(self) -> float:
        """Seconds since a worker took the oldest unacknowledged message (0 if there is none)."""
        oldest = self.client.zrange("unacked_index", 0, 0, withscores=True)
        return time.time() - oldest[0][1] if oldest else 0.0


@pytest.fixture
def broker(postgres: None) -> Iterator[Broker]:
    """The Redis database named by TEST_REDIS_URL, flushed before and after each test."""
    url = getattr(django_settings, "TEST_REDIS_URL", "") or os.environ.get("TEST_REDIS_URL", "")
    require(bool(url), REDIS_REASON)
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        client.close()
        require(False, f"{REDIS_REASON} ({url} is unreachable: {exc})")
    client.flushdb()
    try:
        yield Broker(url, client)
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripeProcess]:
    with FakeStripeProcess() as fake:
        yield fake


@pytest.fixture
def celery_broker(
    settings: Any, broker: Broker, fake_stripe: FakeStripeProcess
) -> Iterator[Broker]:
    """The test process enqueues to the worker's Redis and talks to the same fake Stripe."""
    settings.CELERY_BROKER_URL = broker.url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = fake_stripe.url
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    forget_broker_connections()
    assert celery_app.conf.broker_url == broker.url
    assert not celery_app.conf.task_always_eager
    try:
        yield broker
    finally:
        forget_broker_connections()


# ---- the worker ----

TASK_LINE = re.compile(
    r"Task billing\.tasks\.(?P<task>\w+)\[(?P<id>[\w-]+)\] "
    r"(?P<outcome>succeeded in [\d.e-]+s|retry|raised unexpected|failed)[^:]*: (?P<result>.*)"
)


class Worker:
    """One `celery worker` process (prefork pool) in its own process group."""

    def __init__(self, name: str, log_path: Path, env: dict[str, str], concurrency: int) -> None:
        self.name = name
        self.log_path = log_path
        command = [
            sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel=INFO",
            f"--concurrency={concurrency}", "--pool=prefork", f"--hostname={name}@%h",
            # No peers to sync with or monitor: start faster, talk only to the task queue.
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        ]  # fmt: skip
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its pool children share its process group
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return f"--- worker {self.name} log (tail) ---\n" + "\n".join(
            self.log().splitlines()[-lines:]
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(r"@\S+ ready\.", self.log()):
            if self.process.poll() is not None:
                pytest.fail(
                    f"worker {self.name} exited with {self.process.returncode}\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"worker {self.name} not ready after {timeout:g} s\n{self.tail()}")
            time.sleep(0.05)

    def task_lines(self, task: str = "auto_recharge_run") -> list[re.Match[str]]:
        return [m for m in TASK_LINE.finditer(self.log()) if m["task"] == task]

    def results(self, task: str = "auto_recharge_run") -> list[str]:
        """Return values of the finished runs of `task`, in log order ("SUCCEEDED", "not due")."""
        return [
            m["result"].strip("'")
            for m in self.task_lines(task)
            if m["outcome"].startswith("succeeded")
        ]

    def retries(self, task: str = "auto_recharge_run") -> list[str]:
        return [m["result"] for m in self.task_lines(task) if m["outcome"] == "retry"]

    def check_no_task_crashed(self) -> None:
        crashed = [
            m[0]
            for m in TASK_LINE.finditer(self.log())
            if m["outcome"] in ("raised unexpected", "failed")
        ]
        if crashed:
            pytest.fail(f"a task crashed in worker {self.name}: {crashed[-1]}\n{self.tail()}")

    def wait_results(
        self,
        count: int,
        *,
        task: str = "auto_recharge_run",
        timeout: float = 30.0,
    ) -> list[str]:
        return wait_until(
            lambda: len(self.results(task)) >= count and self.results(task),
            what=f"{count} finished {task} tasks in worker {self.name}",
            timeout=timeout,
            workers=(self,),
        )

    def pool_processes(self) -> list[int]:
        """Process ids of the prefork children (the main process's children)."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                state_and_parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
            except (OSError, IndexError):
                continue  # gone meanwhile
            if int(state_and_parent[1]) == self.process.pid and state_and_parent[0] != "Z":
                children.append(int(stat.parent.name))
        return children

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crashed machine would."""
        self._kill_group()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """At teardown the test has waited for the tasks it cares about, so nothing needs a
        warm shutdown (which takes seconds); leftover messages go with the flushed Redis."""
        self.kill()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture
def mail_dir(tmp_path: Path) -> Path:
    path = tmp_path / "mail"
    path.mkdir()
    return path


@pytest.fixture
def start_worker(
    tmp_path: Path, celery_broker: Broker, fake_stripe: FakeStripeProcess, mail_dir: Path
) -> Iterator[Callable[..., Worker]]:
    """Start a worker against the test database, Redis and the fake Stripe; extra keyword
    arguments are environment variables (e.g. CELERY_VISIBILITY_TIMEOUT="1")."""
    workers: list[Worker] = []
    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEST_", "CELERY_", "STRIPE_", "EMAIL_", "DJANGO_"))
        and key.upper() not in PROXY_VARIABLES
    }

    def start(concurrency: int = 2, **extra_env: str) -> Worker:
        env = {
            **base_env,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DJANGO_SECRET_KEY": "celery-integration-tests-not-secret",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": celery_broker.url,
            "STRIPE_SECRET_KEY": API_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": fake_stripe.url,
            "STRIPE_MAX_NETWORK_RETRIES": "0",
            # Four slashes: django-environ drops the first character of the path.
            "EMAIL_URL": f"filemail:///{mail_dir}",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        name = f"test{len(workers) + 1}-{os.getpid()}"
        worker = Worker(name, tmp_path / f"worker-{name}.log", env, concurrency)
        workers.append(worker)
        worker.wait_ready()
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()


# ---- data ----


@pytest.fixture
def recharge_account(celery_broker: Broker, prepaid_account: BillingAccount) -> BillingAccount:
    """A prepaid developer with a saved card, $30 of credit, and auto-recharge on: below $20,
    add $50. The Stripe customer is left for the app to create on the first charge."""
    account = prepaid_account
    card_save(account=account, payment_method_id=CARD, brand="visa", last4="4242")
    account.refresh_from_db()
    wallet_credit(
        account=account,
        money=Money(OPENING, "USD"),
        transaction_id="opening-credit",
        actor=Actor.system(),
        kind=LedgerEntry.Kind.ADJUSTMENT,  # only the recharge is a TOP_UP entry
    )
    auto_recharge_configure(
        account=account,
        currency="USD",
        enabled=True,
        threshold=Money(THRESHOLD, "USD"),
        mode=AutoRecharge.Mode.FIXED,
        amount=Money(RECHARGE, "USD"),
        monthly_cap=None,
        changed_by=None,
    )
    account.refresh_from_db()
    return account
