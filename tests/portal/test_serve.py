"""`make serve` (issue 14): nginx in front of gunicorn, so slow clients cannot starve the site.

These tests start the real stack (`make serve`, or deploy/serve.py where migrate is beside the
point) on a free port with a throwaway SQLite database, and talk to it over TCP. They need nginx
at /usr/sbin/nginx (Debian package nginx): skipped without it, failed with REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from deploy.serve import render_nginx_conf
from tests.conftest import require

pytestmark = pytest.mark.nginx

ROOT = Path(settings.BASE_DIR)
NGINX = "/usr/sbin/nginx"
SLOW_CLIENTS = 50
DEADLINE = 1.0  # seconds: every /healthz answer must come within it
PROBE_SECONDS = 10.0
BODY_LIMIT = 2_621_440  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), which nginx enforces
START_TIMEOUT = 90.0
TRUSTED = "127.0.0.2"  # the load balancer of the shared stack
STOP_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def nginx() -> str:
    require(os.access(NGINX, os.X_OK), f"needs nginx at {NGINX} (apt-get install -y nginx)")
    return NGINX


# -- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stack_env(var_dir: Path) -> dict[str, str]:
    """The test process's environment without anything that would change the stack (settings
    of the tests, a parent make's flags), plus a throwaway var dir and SQLite database."""
    dropped = ("DJANGO_", "DATABASE_", "STRIPE_", "CELERY_", "PORTAL_", "GUNICORN_", "MAKE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    for name in ("CACHE_URL", "EMAIL_URL", "HOST", "PORT", "NGINX", "MFLAGS"):
        env.pop(name, None)
    var_dir.mkdir(parents=True, exist_ok=True)
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        PORTAL_VAR_DIR=str(var_dir),
        DATABASE_URL=f"sqlite:///{var_dir / 'portal.sqlite3'}",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    return env


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (zombies count as gone)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    var_dir: Path
    log: Path

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited ({self.proc.returncode}):\n{self.output()}")
            try:
                if get(self, "/healthz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"no answer from /healthz within {START_TIMEOUT:.0f} s:\n{self.output()}")

    def kill_everything(self) -> None:
        """Teardown of last resort: nothing of this server outlives the test."""
        tree = descendants(self.proc.pid) | {self.proc.pid}
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_TIMEOUT)
        for pid in alive(tree):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()


def start(command: list[str], tmp: Path, **extra_env: str) -> Server:
    port = free_port()
    var_dir = tmp / "var"
    log = tmp / "server.log"
    env = {**stack_env(var_dir), **extra_env}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [arg.format(port=port) for arg in command],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Server(proc=proc, port=port, var_dir=var_dir, log=log)


# `-o .venv/.installed`: the tests run inside the installed venv; make must not reinstall it.
MAKE_SERVE = ["make", "--no-print-directory", "-o", ".venv/.installed", "serve"]
MAKE_SERVE += ["HOST=127.0.0.1", "PORT={port}"]
SERVE_SCRIPT = [sys.executable, "deploy/serve.py", "--host", "127.0.0.1", "--port", "{port}"]
# Today's start before issue 14: gunicorn's sync workers with nothing in front.
PLAIN_GUNICORN = [str(Path(sys.executable).parent / "gunicorn"), "portal.wsgi"]
PLAIN_GUNICORN += ["--bind", "127.0.0.1:{port}", "--workers", "4", "--no-control-socket"]


@pytest.fixture(scope="module")
def stack(nginx: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`make serve` on a free port, shared by the tests that only send it requests."""
    # A load balancer at 127.0.0.2 is trusted; the tests' own requests come from 127.0.0.1.
    server = start(MAKE_SERVE, tmp_path_factory.mktemp("serve"), PORTAL_TRUSTED_PROXIES=TRUSTED)
    try:
        server.wait_healthy()
        yield server
    finally:
        server.kill_everything()


# -- clients ---------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def get(server: Server, path: str, *, timeout: float = 10, **kwargs) -> Answer:
    return request(server, "GET", path, timeout=timeout, **kwargs)


def request(
    server: Server,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
    source: str = "127.0.0.1",
) -> Answer:
    conn = http.client.HTTPConnection(
        server.host, server.port, timeout=timeout, source_address=(source, 0)
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


@dataclass
class SlowClients:
    """`count` connections that send a request line and a Host header, then one more header
    byte a second and never finish. One whose connection the server closes is opened again,
    so the pressure lasts."""

    server: Server
    count: int
    opened: int = 0
    closed_by_server: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _socks: list[socket.socket] = field(default_factory=list)

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self.server.host, self.server.port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        self.opened += 1
        return sock

    def _run(self) -> None:
        while not self._stop.wait(1):
            readable, _, _ = select.select(self._socks, [], [], 0)
            for sock in readable:  # the server answered (408) or closed: open another
                self.closed_by_server += 1
                self._socks.remove(sock)
                sock.close()
                self._socks.append(self._open())
            for sock in list(self._socks):
                try:
                    sock.sendall(b"X")
                except OSError:
                    self._socks.remove(sock)
                    sock.close()
                    self.closed_by_server += 1
                    self._socks.append(self._open())

    def __enter__(self) -> SlowClients:
        self._socks = [self._open() for _ in range(self.count)]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        time.sleep(1.5)  # every connection has sent a byte more: all are mid-headers
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self._socks:
            sock.close()


@dataclass
class Probe:
    """GET /healthz again and again; each answer's status (or error) and seconds."""

    results: list[tuple[int | str, float]] = field(default_factory=list)

    @property
    def late_or_failed(self) -> list[tuple[int | str, float]]:
        return [(s, t) for s, t in self.results if s != 200 or t > DEADLINE]

    def summary(self) -> str:
        slowest = max(t for _, t in self.results)
        return (
            f"{len(self.results)} requests, {len(self.late_or_failed)} late or failed, "
            f"slowest {slowest:.3f} s; first failures: {self.late_or_failed[:3]}"
        )


def probe_healthz(server: Server, seconds: float, *, stop_at_first_failure: bool = False) -> Probe:
    probe = Probe()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        began = time.monotonic()
        try:
            status: int | str = get(server, "/healthz", timeout=DEADLINE).status
        except OSError as exc:  # TimeoutError included
            status = type(exc).__name__
        probe.results.append((status, time.monotonic() - began))
        if stop_at_first_failure and probe.late_or_failed:
            break
        time.sleep(0.1)
    return probe


# -- slow clients ----------------------------------------------------------------------------


def test_healthz_answers_within_a_second_while_50_slow_clients_trickle_their_headers(stack):
    with SlowClients(stack, SLOW_CLIENTS) as slow:
        probe = probe_healthz(stack, PROBE_SECONDS)
        # nginx gives a client 10 s for its whole header (408), never a gunicorn worker.
        deadline = time.monotonic() + 10
        while slow.closed_by_server < SLOW_CLIENTS and time.monotonic() < deadline:
            time.sleep(0.2)

    print(f"make serve, {SLOW_CLIENTS} slow clients: {probe.summary()}")
    assert len(probe.results) >= 30
    assert probe.late_or_failed == [], probe.summary()
    assert slow.closed_by_server >= SLOW_CLIENTS  # cut off by client_header_timeout
    assert get(stack, "/healthz").status == 200


def test_plain_gunicorn_is_starved_by_the_same_slow_clients(tmp_path):
    """The control: the same load takes down the start that issue 14 reported (gunicorn's
    sync workers with nothing in front), so the test above does exert pressure."""
    server = start(PLAIN_GUNICORN, tmp_path)
    try:
        server.wait_healthy()
        with SlowClients(server, SLOW_CLIENTS):
            probe = probe_healthz(server, PROBE_SECONDS, stop_at_first_failure=True)
    finally:
        server.kill_everything()

    print(f"plain gunicorn, {SLOW_CLIENTS} slow clients: {probe.summary()}")
    assert probe.late_or_failed, probe.summary()


# -- what passes through and what does not ---------------------------------------------------


def test_a_body_over_djangos_limit_is_refused_with_413_before_it_reaches_gunicorn(stack):
    too_big = b"x" * (BODY_LIMIT + 1)

    page = request(stack, "POST", "/accounts/login/", body=too_big)
    api = request(
        stack,
        "POST",
        "/v1/organizations/demo-org/developers/a@example.com/balance:credit",
        body=too_big,
        headers={"Content-Type": "application/json"},
    )

    assert page.status == 413
    assert b"at most 2,621,440 bytes" in page.body
    assert api.status == 413
    assert api.headers["Content-Type"] == "application/json; charset=utf-8"
    assert api.body.startswith(b'{"error": {"code": 413, "message": "The request could not')


def test_a_body_at_the_limit_reaches_django(stack):
    # The Stripe webhook checks the signature first: a bad one is Django's 400, not nginx's 413.
    answer = request(
        stack,
        "POST",
        "/stripe/webhook/",
        body=b"x" * BODY_LIMIT,
        headers={"Stripe-Signature": "t=1,v1=bad", "Content-Type": "application/json"},
    )

    assert answer.status == 400
    assert answer.headers["Server"] == "nginx"


def sign_in_attempt(
    stack: Server, *, origin: str = "http", source: str = "127.0.0.1", **headers: str
) -> Answer:
    """A sign-in with a wrong password: 200 and the form's error once Django took the request
    (a 403 is Django's CSRF check or allauth refusing a client it cannot tell)."""
    form = get(stack, "/accounts/login/")
    cookie = form.headers["Set-Cookie"].split(";", 1)[0]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.body)
    assert token is not None
    page = f"{origin}://127.0.0.1:{stack.port}"
    body = b"csrfmiddlewaretoken=" + token.group(1) + b"&login=nobody%40example.com&password=wrong"
    return request(
        stack,
        "POST",
        "/accounts/login/",
        body=body,
        source=source,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie,
            "Origin": page,
            "Referer": page + "/accounts/login/",
            **{name.replace("_", "-"): value for name, value in headers.items()},
        },
    )


def test_a_sign_in_post_passes_through_and_django_knows_the_clients_address(stack):
    # django-allauth refuses (403) a sign-in whose client address it cannot tell; behind nginx
    # on a unix socket it learns it from X-Real-IP (deploy/wsgi.py).
    answer = sign_in_attempt(stack)

    assert answer.status == 200
    assert b"not correct" in answer.body


def test_a_client_cannot_make_django_believe_it_came_over_https(stack):
    spoofed = {"X_Forwarded_Proto": "https", "X_Forwarded_Ssl": "on", "X_Real_IP": "203.0.113.9"}

    # Had Django taken it for HTTPS, its CSRF check would refuse the http:// Origin (403).
    with_http_origin = sign_in_attempt(stack, origin="http", **spoofed)
    with_https_origin = sign_in_attempt(stack, origin="https", **spoofed)

    assert with_http_origin.status == 200
    assert b"not correct" in with_http_origin.body
    assert with_https_origin.status == 403


def test_the_trusted_load_balancer_may_say_the_client_came_over_https(stack):
    # PORTAL_TRUSTED_PROXIES=127.0.0.2: nginx believes its X-Forwarded-Proto, and Django with it.
    https = sign_in_attempt(stack, origin="https", source=TRUSTED, X_Forwarded_Proto="https")
    http = sign_in_attempt(stack, origin="http", source=TRUSTED, X_Forwarded_Proto="https")

    assert https.status == 200
    assert b"not correct" in https.body
    assert http.status == 403


def test_static_files_come_from_nginx(stack):
    css = sorted((stack.var_dir / "staticfiles" / "css").glob("*.css"))[0]

    answer = get(stack, f"/static/css/{css.name}")

    assert answer.status == 200
    assert answer.body == css.read_bytes()
    assert answer.headers["Content-Type"] == "text/css"
    assert answer.headers["Cache-Control"] == "public, max-age=60"


def test_the_nginx_config_with_trusted_proxies_is_valid(nginx, tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            run_dir=tmp_path,
            listen="127.0.0.1:1",
            gunicorn_socket=tmp_path / "gunicorn.sock",
            static_root=tmp_path,
            max_body_bytes=BODY_LIMIT,
            proxies=["10.0.0.0/8", "2001:db8::1/128"],
            as_root=os.geteuid() == 0,
        )
    )

    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert checked.returncode == 0, checked.stderr
    assert "set_real_ip_from 10.0.0.0/8;" in conf.read_text()


# -- one process tree ------------------------------------------------------------------------


def test_sigterm_to_make_serve_stops_nginx_and_gunicorn_and_leaves_nothing(nginx, tmp_path):
    server = start(MAKE_SERVE, tmp_path)
    try:
        server.wait_healthy()
        tree = descendants(server.proc.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in tree]
        assert sum(b"nginx" in command for command in commands) >= 2  # master and a worker
        assert sum(b"gunicorn" in command for command in commands) == 5  # master, 4 workers

        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(STOP_TIMEOUT)

        assert wait_gone(tree, 5) == set()
        assert "SIGTERM: stopping nginx, then gunicorn" in server.output()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        assert not (server.var_dir / "serve" / "gunicorn.sock").exists()
        assert not (server.var_dir / "serve" / "nginx.pid").exists()
    finally:
        server.kill_everything()


def test_when_gunicorn_dies_nginx_is_stopped_and_the_start_exits_nonzero(nginx, tmp_path):
    server = start(SERVE_SCRIPT, tmp_path)
    try:
        server.wait_healthy()
        tree = descendants(server.proc.pid)
        gunicorn = next(
            pid
            for pid in tree
            if parent_of(pid) == server.proc.pid
            and b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()
        )

        os.kill(gunicorn, signal.SIGKILL)

        assert server.proc.wait(STOP_TIMEOUT) == 1
        # serve.py stops the orphaned workers: on their own they notice only on their next idle
        # tick (15 s, and a loaded CI once took over 40 s)
        assert wait_gone(tree, 10) == set()
        assert "stopped on its own; stopping the rest" in server.output()
    finally:
        server.kill_everything()


def test_make_serve_without_nginx_says_how_to_install_it_and_changes_nothing(tmp_path):
    var_dir = tmp_path / "var"
    done = subprocess.run(
        [*MAKE_SERVE[:-2], "NGINX=/nonexistent/nginx", "PORT=1"],
        cwd=ROOT,
        env=stack_env(var_dir),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert done.returncode != 0
    assert "apt-get install -y nginx" in done.stderr
    assert not (var_dir / "portal.sqlite3").exists()  # stopped before migrate


def test_https_only_without_a_trusted_proxy_refuses_to_start_instead_of_looping(nginx, tmp_path):
    # nginx here speaks plain HTTP; only a trusted proxy in front can say a request was HTTPS.
    production = {
        "DJANGO_SECURE_COOKIES": "true",
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        "CACHE_URL": "redis://127.0.0.1:1/1",
        "EMAIL_URL": "smtp://127.0.0.1:1",
    }
    done = subprocess.run(
        [*SERVE_SCRIPT[:-4], "--port", str(free_port())],
        cwd=ROOT,
        env={**stack_env(tmp_path / "var"), **production},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert done.returncode == 1
    assert "Set PORTAL_TRUSTED_PROXIES" in done.stderr
    assert not (tmp_path / "var" / "serve" / "gunicorn.sock").exists()
