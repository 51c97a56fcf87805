"""/readyz: 200 only when the database and (when configured) the broker answer; /healthz says
only that the process answers, as the load balancer's liveness check and the benchmarks'
baseline."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import forget_broker_connections, require

ROOT = Path(__file__).resolve().parents[2]
BROKER_DOWN = "redis://127.0.0.1:9/0"  # nothing listens on the discard port


@pytest.mark.django_db
def test_ready_when_the_database_answers(client):
    response = client.get("/readyz")
    assert (response.status_code, response.content) == (HTTPStatus.OK, b"ready")


def test_not_ready_when_the_database_is_down():
    """The database really is unreachable here: a process pointed at a closed port."""
    probe = (
        "import django; django.setup(); from django.test import Client; "
        "r = Client(HTTP_HOST='127.0.0.1').get('/readyz'); print(r.status_code, r.content.decode())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    env.update(DATABASE_URL="postgres://portal@127.0.0.1:9/portal")
    env.pop("CELERY_BROKER_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "503 not ready: database unreachable", result.stderr
    health = subprocess.run(
        [sys.executable, "-c", probe.replace("/readyz", "/healthz")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert health.stdout.strip() == "200 ok"  # alive, but not ready


@pytest.fixture
def broker(settings: Any) -> Iterator[Any]:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    forget_broker_connections()
    yield settings
    forget_broker_connections()


@pytest.mark.django_db
def test_not_ready_when_the_broker_is_down(client, broker):
    broker.CELERY_BROKER_URL = BROKER_DOWN
    response = client.get("/readyz")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.content == b"not ready: broker unreachable"


@pytest.mark.django_db
def test_ready_with_a_broker_that_answers(client, broker):
    url = os.environ.get("TEST_REDIS_URL", "")
    require(bool(url), "needs Redis: set TEST_REDIS_URL")
    broker.CELERY_BROKER_URL = url
    assert client.get("/readyz").status_code == HTTPStatus.OK
