"""The production web stack as one process tree (`make serve` runs it, after migrate and
collectstatic): nginx on HOST:PORT in front of gunicorn's sync workers on a private unix socket.

nginx reads every request whole before it hands it to gunicorn, and takes every answer whole
before it sends it on, so a client that sends or reads slowly holds an nginx connection, never a
gunicorn worker (gunicorn's own deployment advice; see the README, "Production-style start").

    .venv/bin/python deploy/serve.py --host 127.0.0.1 --port 8000

Environment: everything the portal reads (passed to gunicorn as given), and
    GUNICORN_WORKERS          sync workers (default 4); GUNICORN_CMD_ARGS: more gunicorn options
    PORTAL_TRUSTED_PROXIES    comma-separated addresses or networks of the proxies in front (the
                              load balancer ending TLS), whose X-Forwarded-For and
                              X-Forwarded-Proto are believed; unset: nginx is the edge
    NGINX                     the nginx binary (default /usr/sbin/nginx, Debian package nginx)

The rendered nginx.conf, the sockets, nginx's pid and temporary files live in
$PORTAL_VAR_DIR/serve/. SIGTERM or SIGINT stops nginx gracefully, then gunicorn, and exits 0;
SIGHUP reloads both. If either dies on its own, the other is stopped and the exit status is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import grp
import ipaddress
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"
DEFAULT_NGINX = "/usr/sbin/nginx"
INSTALL_HINT = "install it with: apt-get install -y nginx   (Debian's package)"
# AF_UNIX paths are at most 107 bytes on Linux.
MAX_SOCKET_PATH = 107
START_TIMEOUT = 30.0
NGINX_STOP_TIMEOUT = 15.0  # worker_shutdown_timeout (10 s) closes what is left
GUNICORN_STOP_TIMEOUT = 35.0  # gunicorn's graceful_timeout is 30 s
PR_SET_PDEATHSIG = 1


class StartError(Exception):
    """The stack cannot start; the message says why and what to do."""


def log(message: str) -> None:
    print(f"serve: {message}", file=sys.stderr, flush=True)


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probe_address(host: str) -> str:
    """Where to knock to see nginx listening: a wildcard address is reached on loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(host, host)  # noqa: S104


def trusted_proxies(value: str) -> list[str]:
    networks = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as exc:
            raise StartError(
                f"PORTAL_TRUSTED_PROXIES: {item!r} is not an address or network"
            ) from exc
    return networks


def worker_count(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if workers < 1:
        raise StartError(f"GUNICORN_WORKERS must be a whole number of at least 1, not {value!r}")
    return workers


def render_nginx_conf(
    *,
    run_dir: Path,
    listen: str,
    gunicorn_socket: Path,
    static_root: Path,
    max_body_bytes: int,
    proxies: list[str],
    as_root: bool,
) -> str:
    if as_root:
        # Workers run as the user who started the stack, as gunicorn does: they read STATIC_ROOT
        # and connect to the socket, both private to that user.
        user_line = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    else:
        user_line = "# not started as root: the workers run as the user who started nginx"
    fields = {
        "RUN_DIR": str(run_dir),
        "USER_LINE": user_line,
        "LISTEN": listen,
        "GUNICORN_SOCKET": str(gunicorn_socket),
        "STATIC_ROOT": str(static_root).rstrip("/"),
        "MAX_BODY_BYTES": str(max_body_bytes),
        "MAX_BODY_TEXT": f"{max_body_bytes:,}",
        "REAL_IP_LINES": "\n".join(f"    set_real_ip_from {net};" for net in proxies)
        or "    # no trusted proxies (PORTAL_TRUSTED_PROXIES unset): nginx is the edge",
        "TRUSTED_GEO_LINES": "\n".join(f"        {net} 1;" for net in proxies),
    }
    text = TEMPLATE.read_text()
    for name, value in fields.items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:
        raise StartError(
            f"{TEMPLATE} has a field serve.py does not fill: {text[text.index('{{') :][:40]}"
        )
    return text


def die_with_parent() -> None:
    """In the child, before exec (Linux): if serve.py itself is killed outright, the kernel sends
    SIGTERM to gunicorn and nginx instead of leaving them serving with nobody watching."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def relay(pipe: IO[bytes] | None) -> None:
    """Copy nginx's access log from its pipe to our stdout until nginx closes it. The pipe is
    drained whatever happens to our stdout: a full pipe would stop nginx's workers."""
    if pipe is None:
        return
    while chunk := pipe.read1(65536):  # type: ignore[attr-defined]
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()


class Stack:
    def __init__(self, *, host: str, port: int, workers: int, nginx: str) -> None:
        self.host, self.port, self.workers, self.nginx = host, port, workers, nginx
        self.gunicorn: subprocess.Popen[bytes] | None = None
        self.nginx_proc: subprocess.Popen[bytes] | None = None
        self.stop_signal: int | None = None
        self._lock: IO[str] | None = None

    # -- start ---------------------------------------------------------------------------------

    def prepare(self) -> tuple[Path, Path]:
        if not os.access(self.nginx, os.X_OK):
            raise StartError(f"nginx is missing ({self.nginx}); {INSTALL_HINT}")
        try:
            var_dir = Path(settings.VAR_DIR)
            static_root = Path(settings.STATIC_ROOT)
            max_body = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0  # None: Django sets no limit
            redirects_to_https = settings.SECURE_SSL_REDIRECT
        except ImproperlyConfigured as exc:
            raise StartError(str(exc)) from exc
        proxies = trusted_proxies(os.environ.get("PORTAL_TRUSTED_PROXIES", ""))
        if redirects_to_https and not proxies:
            raise StartError(
                "DJANGO_SECURE_COOKIES=true sends every plain-HTTP request to HTTPS, and this "
                "nginx speaks plain HTTP: every page would redirect to itself. Set "
                "PORTAL_TRUSTED_PROXIES to the address(es) of the proxy that ends TLS in front."
            )
        run_dir = var_dir.resolve() / "serve"
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        run_dir.chmod(0o700)  # the gunicorn socket inside answers anyone who can reach it
        self._lock = open(run_dir / "lock", "w")  # noqa: SIM115 - held until the process ends
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StartError(f"another make serve is running on {run_dir}") from exc
        gunicorn_socket = run_dir / "gunicorn.sock"
        if len(str(gunicorn_socket)) > MAX_SOCKET_PATH:
            raise StartError(
                f"{gunicorn_socket} is too long for a socket: use a shorter PORTAL_VAR_DIR"
            )
        conf = run_dir / "nginx.conf"
        conf.write_text(
            render_nginx_conf(
                run_dir=run_dir,
                listen=listen_address(self.host, self.port),
                gunicorn_socket=gunicorn_socket,
                static_root=static_root,
                max_body_bytes=max_body,
                proxies=proxies,
                as_root=os.geteuid() == 0,
            )
        )
        if os.geteuid() == 0:
            log("running as root; in production start make serve as an unprivileged user")
        checked = subprocess.run(  # noqa: S603 - our own nginx and config
            [self.nginx, "-t", "-q", "-p", str(run_dir), "-c", str(conf), "-e", "stderr"],
            capture_output=True,
            text=True,
            check=False,
        )
        if checked.returncode:
            raise StartError(f"nginx refuses {conf}:\n{checked.stderr.strip()}")
        return run_dir, conf

    def start(self) -> None:
        run_dir, conf = self.prepare()
        gunicorn_socket = run_dir / "gunicorn.sock"
        gunicorn_bin = Path(sys.executable).parent / "gunicorn"
        command = (
            [str(gunicorn_bin)] if gunicorn_bin.exists() else [sys.executable, "-m", "gunicorn"]
        )
        self.gunicorn = subprocess.Popen(  # noqa: S603
            [
                *command,
                "deploy.wsgi:application",
                "--chdir",
                str(ROOT),
                "--bind",
                f"unix:{gunicorn_socket}",
                "--workers",
                str(self.workers),
                "--control-socket",
                str(run_dir / "gunicorn.ctl"),
            ],
            cwd=ROOT,
            preexec_fn=die_with_parent,  # no threads here
            # Its own process group, so that if the master dies its workers can be stopped as
            # one (and a terminal's Ctrl-C reaches serve.py alone, which stops it in order).
            process_group=0,
        )
        self._wait_until(lambda: self._accepts(socket.AF_UNIX, str(gunicorn_socket)), "gunicorn")
        self.nginx_proc = subprocess.Popen(  # noqa: S603
            [self.nginx, "-p", str(run_dir), "-c", str(conf), "-e", "stderr"],
            cwd=run_dir,
            preexec_fn=die_with_parent,
            # nginx opens /dev/stdout by name for its access log, which fails when stdout is the
            # journal's socket or a file of another user; a pipe of ours always opens.
            stdout=subprocess.PIPE,
        )
        threading.Thread(target=relay, args=(self.nginx_proc.stdout,), daemon=True).start()
        family = socket.AF_INET6 if ":" in probe_address(self.host) else socket.AF_INET
        self._wait_until(
            lambda: self._accepts(family, (probe_address(self.host), self.port)), "nginx"
        )
        log(
            f"serving on http://{listen_address(self.host, self.port)}/ : nginx in front of "
            f"gunicorn ({self.workers} sync workers); Ctrl-C or SIGTERM stops both"
        )

    @staticmethod
    def _accepts(family: int, address: str | tuple[str, int]) -> bool:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            try:
                probe.connect(address)
            except OSError:
                return False
            return True

    def _wait_until(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if self.stop_signal is not None:
                raise StartError(f"stopped while waiting for {what}")
            dead = self.dead_child()
            if dead:
                raise StartError(f"{dead} exited while starting (see its messages above)")
            if time.monotonic() > deadline:
                raise StartError(f"{what} did not start listening within {START_TIMEOUT:.0f} s")
            time.sleep(0.1)

    # -- run and stop --------------------------------------------------------------------------

    def dead_child(self) -> str | None:
        for name, proc in (("gunicorn", self.gunicorn), ("nginx", self.nginx_proc)):
            if proc is not None and proc.poll() is not None:
                return f"{name} (exit status {proc.returncode})"
        return None

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            for proc in (self.nginx_proc, self.gunicorn):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGHUP)  # nginx re-reads its config; gunicorn
            return  # replaces its workers with fresh ones
        self.stop_signal = signum

    def watch(self) -> int:
        while self.stop_signal is None:
            dead = self.dead_child()
            if dead:
                log(f"{dead} stopped on its own; stopping the rest")
                self._stop_orphaned_workers()
                return 1
            time.sleep(0.2)
        log(f"{signal.Signals(self.stop_signal).name}: stopping nginx, then gunicorn")
        return 0

    def _stop_orphaned_workers(self) -> None:
        """A master killed outright leaves its workers serving; each would notice only on its
        next idle tick (gunicorn's timeout / 2, 15 s, longer under load). SIGTERM ends each after
        the request it holds (the worker's wakeup pipe interrupts its wait)."""
        if self.gunicorn is not None and self.gunicorn.poll() is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.gunicorn.pid, signal.SIGTERM)

    def stop(self) -> None:
        """nginx first, gracefully (it finishes the requests it holds, which still need
        gunicorn), then gunicorn, gracefully."""
        self._stop(self.nginx_proc, signal.SIGQUIT, NGINX_STOP_TIMEOUT)
        self._stop(self.gunicorn, signal.SIGTERM, GUNICORN_STOP_TIMEOUT)

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes] | None, how: int, timeout: float) -> None:
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(how)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")  # as manage.py does
    try:
        stack = Stack(
            host=args.host.strip("[]") if args.host.startswith("[") else args.host,
            port=args.port,
            workers=worker_count(os.environ.get("GUNICORN_WORKERS", "4")),
            nginx=os.environ.get("NGINX", DEFAULT_NGINX),
        )
    except StartError as exc:
        log(str(exc))
        return 2
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stack.on_signal)
    try:
        stack.start()
        status = stack.watch()
    except StartError as exc:
        log(str(exc))
        status = 1 if stack.stop_signal is None else 0
    finally:
        stack.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
