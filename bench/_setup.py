"""Shared set-up for the benchmarks: a PostgreSQL database of their own, migrated, and a
prepaid developer with a large balance. Never a timed unit test: these scripts only print."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/portal_bench"


def bench_database_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)


def django_setup(database_url: str) -> None:
    """Create the benchmark database if needed, point Django at it and migrate."""
    import psycopg

    url = urlparse(database_url)
    name = url.path.lstrip("/")
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(database_url: str, workers: int, extra_env: dict[str, str] | None = None):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, **(extra_env or {})}
    env.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "portal.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("gunicorn did not start")
    # Warm every worker up (imports, first connection) before anything is timed.
    for _ in range(workers * 20):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()  # noqa: S310
    return proc, port


def _healthz_client(args: tuple[int, int]) -> int:
    import http.client

    port, count = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    errors = 0
    for _ in range(count):
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        errors += response.status != 200
    conn.close()
    return errors


def healthz_rate(port: int, count: int, clients: int) -> float:
    """The trivial view's requests per second on the same server: client processes with
    keep-alive connections, as the benchmarks' own clients."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(clients) as pool:
        start = time.perf_counter()
        pool.map(_healthz_client, [(port, count // clients)] * clients)
        elapsed = time.perf_counter() - start
    return count // clients * clients / elapsed
