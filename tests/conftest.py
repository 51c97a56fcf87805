"""Shared fixtures: the five roles of the permission matrix, a prepaid account, the
external-service gates, and the helpers every folder uses (NANOS_PER_UNIT, usd()).

Tests that need PostgreSQL, Redis or Chromium skip with the reason when those are missing;
with REQUIRE_SERVICES=1 (set by .ci/run) the same gaps fail instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import kombu.pools
import pytest
from django.core.cache import cache
from django.db import connection, connections

from billing.billing_type.services import billing_type_set
from billing.models import BillingAccount, BillingTypeChange
from billing.money import Money, money_parse
from portal.celery import app as celery_app
from tests.factories import AdminFactory, DeveloperFactory

# The fake Stripe, a prepaid developer signed in, and the webhook helpers, for every folder.
pytest_plugins = ["tests.fixtures.stripe"]

CHROMIUM = "/usr/bin/chromium"
# Nanos in one unit of a currency (one dollar): amounts are stored in nanos.
NANOS_PER_UNIT = 10**9


def usd(text: str) -> Money:
    return money_parse(text, "USD")


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _celery_join_flag():
    """Celery's eager mode marks "inside a task" in one process-wide flag that each eager call
    saves and restores: eager tasks in many threads at once (a concurrency test's debits and
    their reactions) restore over each other and can leave it set, and the next test's
    `result.get()` then refuses ("Never call result.get() within a task"). A test starts clear."""
    from celery._state import _set_task_join_will_block  # noqa: PLC0415

    _set_task_join_will_block(False)
    yield
    _set_task_join_will_block(False)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """allauth counts failed sign-ins per address in the cache: one test's must not limit the
    next one's (every test client comes from 127.0.0.1)."""
    yield
    cache.clear()


@pytest.fixture
def postgres(db: None) -> None:
    require(connection.vendor == "postgresql", "needs PostgreSQL: set TEST_DATABASE_URL")


@pytest.fixture
def developer(db: None):
    return DeveloperFactory()


@pytest.fixture
def prepaid_account(developer) -> BillingAccount:
    """The billing account of `developer` (a fresh developer), which an admin made prepaid."""
    account = developer.billing_account
    billing_type_set(
        account=account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    account.refresh_from_db()
    return account


@pytest.fixture
def other_developer(db: None):
    return DeveloperFactory()


@pytest.fixture
def admin_without_permission(db: None):
    return AdminFactory()


@pytest.fixture
def portal_admin(db: None):
    return AdminFactory(portal_admin=True)


@pytest.fixture
def chromium_path() -> str:
    require(shutil.which(CHROMIUM) is not None, f"needs Chromium at {CHROMIUM}")
    return CHROMIUM


@pytest.fixture
def browser(chromium_path: str):
    try:
        import playwright.sync_api as playwright_api  # noqa: PLC0415 - optional: a clear skip
    except ImportError:
        require(False, "needs the playwright package (make install)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between page actions are still synchronous, so Django's async guard is lifted here only.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()
        # While Playwright's loop runs, the ORM keeps its connections apart from the thread's
        # usual ones (asgiref Local); close those here or the test database cannot be dropped.
        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def wait_until_blocked(thread: threading.Thread) -> bool:
    """PostgreSQL: True once a session of the test database waits for a lock; False if
    `thread` finished (or ten seconds passed) without any waiting."""
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False


def forget_broker_connections() -> None:
    """Close this process's broker connections and let Celery build new ones from the current
    settings, as Celery itself does after a fork. Celery reads the CELERY_* Django settings
    live (so `settings` switches eager mode and the broker URL), but caches its pools."""
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
