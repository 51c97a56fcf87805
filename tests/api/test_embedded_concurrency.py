"""The embedded default (`make run`: a SQLite file, a thread per request) under concurrent API
requests: each one waits its turn instead of failing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_concurrent_api_writes_on_the_embedded_sqlite_never_fail(tmp_path):
    """Eight threads changing a billing type and crediting at once: a transaction that read
    before writing (billing_type_set) could not wait for the lock, and 1 in 6 answered 500."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        PORTAL_VAR_DIR=str(tmp_path),
        DJANGO_ALLOWED_HOSTS="testserver",
    )
    env.pop("CELERY_BROKER_URL", None)

    result = subprocess.run(
        [sys.executable, "-m", "tests.api.embedded_worker", "8", "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    statuses = json.loads(result.stdout.strip().splitlines()[-1])
    assert statuses == {"200": 80}, result.stderr[-2000:]
