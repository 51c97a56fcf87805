"""The WSGI application as gunicorn runs it behind nginx (`make serve`).

gunicorn listens only on a unix socket that only nginx reaches, so every request comes from
nginx and REMOTE_ADDR would be empty (a socket has no address). nginx sets X-Real-IP to the
client's address (its own peer, or what a trusted load balancer said: PORTAL_TRUSTED_PROXIES),
always overwriting whatever the client sent; that value becomes REMOTE_ADDR here, so Django and
django-allauth (sign-in attempt limits count per address) see each client as itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from portal.wsgi import application as portal_application


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    client = environ.get("HTTP_X_REAL_IP", "").strip()
    if client:
        environ["REMOTE_ADDR"] = client
    return portal_application(environ, start_response)
