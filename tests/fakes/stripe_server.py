"""A fake Stripe API that the real ``stripe`` library can talk to on 127.0.0.1.

Tests drive the library's own form encoding, error mapping, idempotency keys and retries
against it, without the internet.

In the test process::

    with FakeStripe() as fake:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": fake.url})

As its own process, for code under test that runs elsewhere (gunicorn, celery)::

    python -m tests.fakes.stripe_server --port 8765    # prints the URL, serves until killed

``FakeStripeProcess`` wraps that command and offers the same test controls over HTTP
(``/_fake/...``).

Only the part of Stripe the portal uses is here: Customers, Checkout Sessions (payment and
setup mode), PaymentIntents, SetupIntents, PaymentMethods, Charges and Refunds. Events are
built by the test controls and returned (and listed by ``events()``); nothing is ever sent
anywhere unless a test calls ``send_webhook``, which only accepts 127.0.0.0/8 URLs.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import html
import ipaddress
import json
import re
import secrets
import signal
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Json = dict[str, Any]
Handler = Callable[..., Json]

# The Stripe-Version that stripe==16.1.0 sends; events carry it the way real ones do.
API_VERSION = "2026-10-28.endive"
LOOPBACK = "127.0.0.1"
LOOPBACK_NETWORK = ipaddress.ip_network("127.0.0.0/8")
PROJECT_ROOT = Path(__file__).resolve().parents[2]

BEHAVIOURS = (
    "succeed",
    "card_declined",
    "authentication_required",
    "server_error",
    "saved_server_error",
    "saved_server_error_after_charge",
)
# 500s Stripe answers once the endpoint has begun: saved under the idempotency key and replayed.
SAVED_ERRORS = ("saved_server_error", "saved_server_error_after_charge")

# Stripe's well-known test-mode PaymentMethods, so tests can use the ids they would use against
# real test mode: (brand, last4, behaviour when confirmed).
TEST_PAYMENT_METHODS: dict[str, tuple[str, str, str]] = {
    "pm_card_visa": ("visa", "4242", "succeed"),
    "pm_card_mastercard": ("mastercard", "4444", "succeed"),
    "pm_card_chargeDeclined": ("visa", "0002", "card_declined"),
    "pm_card_authenticationRequired": ("visa", "3184", "authentication_required"),
}

# Stripe saves a response under its idempotency key once the endpoint has run, successful or
# a card error. An injected `server_error` is not saved (it failed before the endpoint began),
# so a retry with the same key runs again -- a transient outage. The `saved_server_error`
# behaviours are 500s from inside the endpoint: saved and replayed, as Stripe documents.
SAVED_STATUSES = frozenset({200, 402})

# Stripe's smallest charge in minor units, from its own table (docs.stripe.com/currencies,
# "Minimum and maximum charge amounts"); kept here rather than imported, so that the fake does
# not agree with the portal's copy by construction.
MINIMUM_CHARGE = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50, "czk": 1500,
    "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50, "jpy": 50,
    "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200, "sek": 300,
    "sgd": 50,
}  # fmt: skip

_ID_ALPHABET = string.ascii_letters + string.digits
_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


# --- errors and replies ------------------------------------------------------------------


class StripeApiError(Exception):
    """An error answered in Stripe's JSON shape, with the HTTP status Stripe would use."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: Json | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.saved = False  # a 500 from inside the endpoint: kept under the idempotency key
        self.error: Json = {"type": type_, "code": code, "message": message}
        if param is not None:
            self.error["param"] = param
        if decline_code is not None:
            self.error["decline_code"] = decline_code
        self.error.update(extra or {})


def _missing(name: str) -> StripeApiError:
    return StripeApiError(
        400, f"Missing required param: {name}.", code="parameter_missing", param=name
    )


def _no_such(object_name: str, object_id: str, param: str, status: int) -> StripeApiError:
    message = f"No such {object_name}: '{object_id}'"
    return StripeApiError(status, message, code="resource_missing", param=param)


def _unrecognized(method: str, path: str) -> StripeApiError:
    return StripeApiError(404, f"Unrecognized request URL ({method}: {path}).")


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    saved: bool = False  # an error Stripe keeps under the idempotency key


def json_reply(status: int, obj: Any) -> Reply:
    headers = {"Content-Type": "application/json", "Request-Id": new_id("req_", 14)}
    return Reply(status, json.dumps(obj).encode(), headers)


def error_reply(exc: StripeApiError) -> Reply:
    reply = json_reply(exc.status, {"error": exc.error})
    reply.saved = exc.saved
    return reply


# --- Stripe's form encoding --------------------------------------------------------------


def decode_form(body: str) -> Json:
    """Decode Stripe's bracketed form encoding (``a[b][0][c]=v``) into nested dicts and lists.

    Values stay strings, as on the wire; handlers convert what they use.
    """
    root: Json = {}
    for key, value in urllib.parse.parse_qsl(body, keep_blank_values=True):
        _assign(root, _key_parts(key), value)
    return _lists_from_indexes(root)


def _key_parts(key: str) -> list[str]:
    match = _KEY_RE.match(key)
    if match is None:
        return [key]
    return [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]


def _assign(node: Json, parts: list[str], value: str) -> None:
    for part in parts[:-1]:
        child = node.setdefault(part or str(len(node)), {})
        if not isinstance(child, dict):
            raise StripeApiError(400, f"Invalid hash: {parts[0]}", param=parts[0])
        node = child
    node[parts[-1] or str(len(node))] = value


def _lists_from_indexes(node: Any) -> Any:
    # The library always sends lists as a[0], a[1], ...: a dict keyed only by digits is a list.
    if not isinstance(node, dict):
        return node
    converted = {key: _lists_from_indexes(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def _str(params: Json, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise _missing(name)
        return None
    if not isinstance(value, str):
        raise StripeApiError(400, f"Invalid string: {name}", param=name)
    return value


def _expires_at(params: Json) -> int:
    """Stripe's rule: 30 minutes to 24 hours after creation; a day when not given."""
    now = int(time.time())
    expires_at = _int(params, "expires_at")
    if expires_at is None:
        return now + 24 * 3600
    if not now + 30 * 60 - 5 <= expires_at <= now + 24 * 3600:
        message = "expires_at must be between 30 minutes and 24 hours from now."
        raise StripeApiError(400, message, param="expires_at")
    return expires_at


def _check_minimum_charge(amount: int, currency: str, what: str, param: str) -> None:
    """Stripe refuses a payment page or a charge below the currency's minimum charge."""
    minimum = MINIMUM_CHARGE.get(currency)
    if minimum is not None and amount < minimum:
        shown = str(minimum) if currency == "jpy" else f"{minimum // 100}.{minimum % 100:02d}"
        message = f"{what} must be at least {shown} {currency}."
        raise StripeApiError(400, message, code="amount_too_small", param=param)


def _int(params: Json, name: str, *, required: bool = False) -> int | None:
    text = _str(params, name, required=required)
    if text is None:
        return None
    if not text.isdigit():
        message = f"Invalid integer: {text}"
        raise StripeApiError(400, message, code="parameter_invalid_integer", param=name)
    return int(text)


def _bool(params: Json, name: str) -> bool:
    value = params.get(name) or "false"
    if value not in ("true", "false"):
        raise StripeApiError(400, f"Invalid boolean: {value}", param=name)
    return value == "true"


def _off_session(params: Json) -> bool:
    # Stripe accepts a boolean or the kind of off-session payment.
    value = params.get("off_session") or "false"
    if value not in ("true", "false", "one_off", "recurring"):
        raise StripeApiError(400, f"Invalid off_session: {value}", param="off_session")
    return value != "false"


def _hash(params: Json, name: str) -> Json:
    value = params.get(name) or {}
    if isinstance(value, list):  # a hash whose keys happened to be "0", "1", ...
        value = {str(index): item for index, item in enumerate(value)}
    if not isinstance(value, dict):
        raise StripeApiError(400, f"Invalid hash: {name}", param=name)
    return value


def _metadata(params: Json) -> dict[str, str]:
    """Stripe's limits: 50 keys, keys up to 40 characters, values up to 500."""
    metadata = _hash(params, "metadata")
    if any(not isinstance(value, str) for value in metadata.values()):
        raise StripeApiError(400, "Invalid metadata: values must be strings", param="metadata")
    if len(metadata) > 50:
        raise StripeApiError(400, "Invalid metadata: at most 50 keys", param="metadata")
    for key, value in metadata.items():
        if len(key) > 40:
            message = f"Invalid metadata: key {key!r} is longer than 40 characters"
            raise StripeApiError(400, message, param=f"metadata[{key}]")
        if len(value) > 500:
            message = f"Invalid metadata: the value of {key!r} is longer than 500 characters"
            raise StripeApiError(400, message, param=f"metadata[{key}]")
    return {key: value for key, value in metadata.items() if value != ""}


def _short_str(params: Json, name: str, max_length: int) -> str | None:
    """A string parameter with Stripe's maximum length (a Customer's name: 256)."""
    value = _str(params, name)
    if value is not None and len(value) > max_length:
        message = f"Invalid string: {value[:20]}...; must be at most {max_length} characters"
        raise StripeApiError(400, message, param=name)
    return value


def _line_items_total(params: Json) -> tuple[int, str]:
    items = params.get("line_items")
    if not isinstance(items, list) or not items:
        raise _missing("line_items")
    total, currencies = 0, set()
    for index, item in enumerate(items):
        price_data = item.get("price_data") if isinstance(item, dict) else None
        if not isinstance(price_data, dict):
            param = f"line_items[{index}][price_data]"
            raise StripeApiError(400, f"The fake only supports {param}.", param=param)
        unit_amount = _int(price_data, "unit_amount", required=True)
        quantity = _int(item, "quantity") or 1
        currencies.add(str(_str(price_data, "currency", required=True)).lower())
        total += int(unit_amount or 0) * quantity
    if len(currencies) > 1:
        raise StripeApiError(400, "All line_items must share a currency.", param="line_items")
    currency = currencies.pop()
    what = "The Checkout Session's total amount due"
    _check_minimum_charge(total, currency, what, "line_items")
    return total, currency


# --- the fake ----------------------------------------------------------------------------


@dataclass
class _Behaviour:
    kind: str
    failures_left: int = 0


@dataclass
class _Delay:
    method: str
    path: str
    seconds: float
    times_left: int


@dataclass
class _Saved:
    method: str
    path: str
    params: Json
    reply: Reply


class FakeStripe:
    """In-memory Stripe served over HTTP on 127.0.0.1; see the module docstring."""

    def __init__(self, port: int = 0, host: str = LOOPBACK) -> None:
        require_loopback_host(host)
        self._address = (host, port)
        # One re-entrant lock around all state: handlers run on server threads, controls on
        # the test's thread, and controls call each other.
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self._routes = self._api_routes()
        self._objects: dict[str, Json] = {}
        self._requests: list[Json] = []
        self._events: list[Json] = []
        self._idempotency: dict[str, _Saved] = {}
        self._behaviours: dict[str, _Behaviour] = {}
        self._default_behaviour = _Behaviour("succeed")
        self._payment_intent_data: dict[str, Json] = {}
        self._delays: list[_Delay] = []
        self.reset()

    # lifecycle

    def start(self) -> FakeStripe:
        server = _Server(self._address, _Handler)
        server.fake = self
        host, port = server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._server = server
        # A short poll interval keeps stop() (and so every test teardown) fast.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join()

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # test controls

    def reset(self) -> None:
        """Forget every object, request, event, idempotency key and card behaviour."""
        with self._lock:
            self._objects = {}
            self._requests = []
            self._events = []
            self._idempotency = {}
            self._behaviours = {}
            self._default_behaviour = _Behaviour("succeed")
            self._payment_intent_data = {}
            self._delays = []
            self._seed_test_payment_methods()

    def received_requests(self) -> list[Json]:
        """API requests so far: method, path, params, idempotency_key, time, status, replayed."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def events(self) -> list[Json]:
        """Every event the test controls have built, oldest first."""
        with self._lock:
            return copy.deepcopy(self._events)

    def get_object(self, object_id: str) -> Json:
        """A copy of any stored object (customer, session, PaymentIntent, charge, ...)."""
        with self._lock:
            obj = self._objects.get(object_id)
            if obj is None:
                raise _no_such("object", object_id, "id", 404)
            return copy.deepcopy(obj)

    def objects(self, object_name: str | None = None) -> list[Json]:
        """Copies of every stored object, or of one kind (``"payment_intent"``), oldest first."""
        with self._lock:
            return [
                copy.deepcopy(obj)
                for obj in self._objects.values()
                if object_name is None or obj["object"] == object_name
            ]

    def set_response_delay(
        self,
        seconds: float,
        path: str = "/v1/payment_intents",
        method: str = "POST",
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` API requests to ``method path`` only after ``seconds``.

        The request is carried out at once (objects created, request recorded, idempotency key
        saved); only the answer waits, without holding up other requests. Like a slow network
        after Stripe did the work: a client that dies meanwhile finds the result under the
        same idempotency key when it tries again.
        """
        if seconds < 0 or times < 1:
            raise ValueError("a delay needs seconds >= 0 and times >= 1")
        with self._lock:
            self._delays.append(_Delay(method.upper(), path, float(seconds), times))

    def set_card_behaviour(
        self, behaviour: str, payment_method: str | None = None, times: int = 1
    ) -> None:
        """Choose what confirming a PaymentIntent does, for one PaymentMethod or by default.

        ``server_error`` answers HTTP 500 ``times`` times, then behaves like ``succeed``.
        """
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {BEHAVIOURS}, not {behaviour!r}")
        failing = behaviour == "server_error" or behaviour in SAVED_ERRORS
        entry = _Behaviour(behaviour, times if failing else 0)
        with self._lock:
            if payment_method is None:
                self._default_behaviour = entry
            else:
                self._behaviours[payment_method] = entry

    def add_payment_method(
        self, brand: str = "visa", last4: str = "4242", customer: str | None = None
    ) -> Json:
        """Store a card PaymentMethod (as if collected by Checkout) and return it."""
        with self._lock:
            return copy.deepcopy(self._new_payment_method(brand, last4, customer))

    def complete_checkout_session(self, session_id: str, paid: bool = True) -> Json:
        """Finish a Checkout Session as the customer would; return checkout.session.completed.

        Payment mode creates a card, a PaymentIntent and (when paid) a Charge; ``paid=False``
        leaves the PaymentIntent ``processing`` like a delayed payment method. Setup mode
        creates a succeeded SetupIntent.
        """
        with self._lock:
            session = self._open_session(session_id)
            card = self._new_payment_method("visa", "4242", session["customer"])
            if session["mode"] == "payment":
                self._pay_session(session, card, paid)
            else:
                self._set_up_session(session, card)
            session["status"] = "complete"
            return self.event_for("checkout.session.completed", session)

    def decline_checkout_attempt(self, session_id: str) -> Json:
        """The customer's card is declined on the payment page: return the
        payment_intent.payment_failed Stripe sends. The session stays open, so the customer can
        try another card; completing it later pays the same PaymentIntent."""
        with self._lock:
            session = self._open_session(session_id)
            if session["mode"] != "payment":
                raise ValueError("only a payment-mode session takes a card payment")
            card = self._new_payment_method("visa", "0002", session["customer"])
            intent = self._session_payment_intent(session, card)
            self._decline(intent)  # the page shows the error; nothing is raised to the API
            return self.event_for("payment_intent.payment_failed", intent)

    def expire_checkout_session(self, session_id: str) -> Json:
        """Expire an open Checkout Session; return checkout.session.expired."""
        with self._lock:
            session = self._open_session(session_id)
            session["status"] = "expired"
            return self.event_for("checkout.session.expired", session)

    def event_for(self, event_type: str, obj: Json) -> Json:
        """Wrap ``obj`` in a Stripe event envelope, remember it and return a copy."""
        with self._lock:
            event = {
                "id": new_id("evt_"),
                "object": "event",
                "api_version": API_VERSION,
                "created": int(time.time()),
                "data": {"object": copy.deepcopy(obj)},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": event_type,
            }
            self._events.append(event)
            return copy.deepcopy(event)

    def payment_intent_succeeded_event(self, payment_intent_id: str) -> Json:
        with self._lock:
            intent = self._require(payment_intent_id, "payment_intent")
            return self.event_for("payment_intent.succeeded", intent)

    def payment_intent_failed_event(self, payment_intent_id: str) -> Json:
        with self._lock:
            intent = self._require(payment_intent_id, "payment_intent")
            return self.event_for("payment_intent.payment_failed", intent)

    def charge_refunded_event(self, payment_intent_id: str, amount: int | None = None) -> Json:
        """Refund the PaymentIntent's charge (all that is left by default), as from the
        Dashboard, and return charge.refunded with the updated charge."""
        params = {"payment_intent": payment_intent_id}
        if amount is not None:
            params["amount"] = str(amount)
        with self._lock:
            refund = self._create_refund(params)
            return self.event_for("charge.refunded", self._objects[refund["charge"]])

    def refund_failed_events(
        self, refund_id: str, failure_reason: str = "expired_or_canceled_card"
    ) -> list[Json]:
        """The card refused a refund that had succeeded (test card 4000000000005126 does this):
        the events Stripe sends, each carrying the refund as it now is, status ``failed``.

        The charge is left as it was: whether Stripe lowers its ``amount_refunded`` after a
        failed refund is not documented, so the portal must not depend on it either way.
        """
        with self._lock:
            refund = self._require(refund_id, "refund")
            if refund["status"] in ("failed", "canceled"):
                raise ValueError(f"refund {refund_id} is already {refund['status']}")
            refund.update(
                status="failed",
                failure_reason=failure_reason,
                failure_balance_transaction=new_id("txn_"),
            )
            types = ("charge.refund.updated", "refund.updated", "refund.failed")
            return [self.event_for(event_type, refund) for event_type in types]

    def latest_refund(self, payment_intent_id: str) -> Json:
        """A copy of the newest refund of a PaymentIntent (charge.refunded names none)."""
        with self._lock:
            for obj in reversed(list(self._objects.values())):
                if obj["object"] == "refund" and obj["payment_intent"] == payment_intent_id:
                    return copy.deepcopy(obj)
            raise _no_such("refund for payment_intent", payment_intent_id, "id", 404)

    def dispute_created_event(
        self, payment_intent_id: str, amount: int | None = None, reason: str = "fraudulent"
    ) -> Json:
        with self._lock:
            charge = self._succeeded_charge(payment_intent_id)
            dispute = self._new(
                "dispute",
                "dp_",
                {
                    "amount": charge["amount"] if amount is None else amount,
                    "charge": charge["id"],
                    "payment_intent": payment_intent_id,
                    "currency": charge["currency"],
                    "reason": reason,
                    "status": "needs_response",
                    "is_charge_refundable": False,
                    "metadata": {},
                },
            )
            charge["disputed"] = True
            return self.event_for("charge.dispute.created", dispute)

    def dispute_closed_event(self, payment_intent_id: str, status: str = "lost") -> Json:
        if status not in ("won", "lost", "warning_closed"):
            raise ValueError(f"a closed dispute is won, lost or warning_closed, not {status!r}")
        with self._lock:
            dispute = self._latest_dispute(payment_intent_id)
            dispute["status"] = status
            return self.event_for("charge.dispute.closed", dispute)

    def payment_intent_event(self, payment_intent_id: str, event_type: str, **options: Any) -> Json:
        """Build any of the PaymentIntent-related events above by its Stripe type name."""
        builders: dict[str, Handler] = {
            "payment_intent.succeeded": self.payment_intent_succeeded_event,
            "payment_intent.payment_failed": self.payment_intent_failed_event,
            "charge.refunded": self.charge_refunded_event,
            "charge.dispute.created": self.dispute_created_event,
            "charge.dispute.closed": self.dispute_closed_event,
        }
        if event_type not in builders:
            raise ValueError(f"unsupported event type {event_type!r}")
        return builders[event_type](payment_intent_id, **options)

    # HTTP entry point

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: str) -> Reply:
        """Answer one HTTP request. ``headers`` must be keyed in lower case."""
        parts = urllib.parse.urlsplit(target)
        if parts.path.startswith("/v1/"):
            return self._handle_api(method, parts.path, parts.query, headers, body)
        if parts.path.startswith("/_fake/"):
            return self._handle_control(method, parts.path, body)
        if parts.path.startswith("/checkout/"):
            return self._handle_hosted_checkout(method, parts.path)
        return error_reply(_unrecognized(method, parts.path))

    # API plumbing

    def _api_routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        one = "([^/]+)"
        table: list[tuple[str, str, Handler]] = [
            ("POST", "/v1/customers", self._create_customer),
            ("GET", f"/v1/customers/{one}", self._retriever("customer")),
            ("POST", "/v1/checkout/sessions", self._create_checkout_session),
            ("GET", f"/v1/checkout/sessions/{one}", self._retriever("checkout.session")),
            ("POST", f"/v1/checkout/sessions/{one}/expire", self._expire_session_api),
            ("POST", "/v1/payment_intents", self._create_payment_intent),
            ("GET", "/v1/payment_intents", self._list_payment_intents),
            ("GET", f"/v1/payment_intents/{one}", self._retriever("payment_intent")),
            ("POST", "/v1/setup_intents", self._create_setup_intent),
            ("GET", f"/v1/setup_intents/{one}", self._retriever("setup_intent")),
            ("GET", f"/v1/payment_methods/{one}", self._retriever("payment_method")),
            ("GET", f"/v1/charges/{one}", self._retriever("charge")),
            ("POST", "/v1/refunds", self._create_refund),
            ("GET", f"/v1/refunds/{one}", self._retriever("refund")),
        ]
        return [(method, re.compile(path), handler) for method, path, handler in table]

    def _handle_api(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: str
    ) -> Reply:
        key = headers.get("idempotency-key") if method == "POST" else None
        params: Json = {}
        with self._lock:
            try:
                _check_api_key(headers.get("authorization", ""))
                params = decode_form(body if method == "POST" else query)
                reply = self._replay(key, method, path, params) if key else None
                if reply is None:
                    reply = self._execute(method, path, params)
                    self._save(key, method, path, params, reply)
            except StripeApiError as exc:
                reply = error_reply(exc)
            self._record(method, path, params, key, reply)
            delay = self._take_delay(method, path)
        if delay:
            time.sleep(delay)  # outside the lock: other requests and the controls carry on
        return reply

    def _take_delay(self, method: str, path: str) -> float:
        for delay in self._delays:
            if (delay.method, delay.path) == (method, path) and delay.times_left > 0:
                delay.times_left -= 1
                return delay.seconds
        return 0.0

    def _execute(self, method: str, path: str, params: Json) -> Reply:
        handler, args = self._route(method, path)
        try:
            obj = handler(params, *args)
        except StripeApiError as exc:
            # Returned, not raised: card errors are saved for replay, and so is an object the
            # request names that Stripe looked up and did not find (the endpoint had begun;
            # only a request that fails parameter validation is not saved).
            exc.saved = exc.saved or exc.error.get("code") == "resource_missing"
            return error_reply(exc)
        return json_reply(200, self._expanded(copy.deepcopy(obj), params.get("expand")))

    def _route(self, method: str, path: str) -> tuple[Handler, list[str]]:
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                # The library quote_plus()es ids into the path.
                return handler, [urllib.parse.unquote_plus(group) for group in match.groups()]
        raise _unrecognized(method, path)

    def _replay(self, key: str, method: str, path: str, params: Json) -> Reply | None:
        saved = self._idempotency.get(key)
        if saved is None:
            return None
        if (saved.method, saved.path) != (method, path):
            message = (
                "Keys for idempotent requests can only be used for the same endpoint they "
                f"were first used for ({saved.method} {saved.path} vs {method} {path})."
            )
            raise StripeApiError(400, message, type_="idempotency_error")
        if saved.params != params:
            message = (
                "Keys for idempotent requests can only be used with the same parameters "
                f"they were first used with. Try using a key other than '{key}' if you "
                "meant to execute a different request."
            )
            raise StripeApiError(400, message, type_="idempotency_error")
        headers = {
            **saved.reply.headers,
            "Request-Id": new_id("req_", 14),
            "Idempotent-Replayed": "true",
            "Original-Request": saved.reply.headers["Request-Id"],
        }
        return Reply(saved.reply.status, saved.reply.body, headers)

    def _save(self, key: str | None, method: str, path: str, params: Json, reply: Reply) -> None:
        if key and (reply.status in SAVED_STATUSES or reply.saved):
            self._idempotency[key] = _Saved(method, path, copy.deepcopy(params), reply)

    def _record(self, method: str, path: str, params: Json, key: str | None, reply: Reply) -> None:
        self._requests.append(
            {
                "method": method,
                "path": path,
                "params": copy.deepcopy(params),
                "idempotency_key": key,
                "time": time.time(),
                "status": reply.status,
                "replayed": "Idempotent-Replayed" in reply.headers,
            }
        )

    def _expanded(self, obj: Json, expand: Any) -> Json:
        for path in expand if isinstance(expand, list) else []:
            if isinstance(path, str):
                self._expand_path(obj, path.split("."))
        return obj

    def _expand_path(self, obj: Json, parts: list[str]) -> None:
        value = obj.get(parts[0])
        if isinstance(value, str) and value in self._objects:
            value = obj[parts[0]] = copy.deepcopy(self._objects[value])
        if len(parts) > 1 and isinstance(value, dict):
            self._expand_path(value, parts[1:])

    # object store

    def _new(self, object_name: str, prefix: str, fields: Json, object_id: str = "") -> Json:
        obj: Json = {
            "id": object_id or new_id(prefix),
            "object": object_name,
            "created": int(time.time()),
            "livemode": False,
            **fields,
        }
        self._objects[obj["id"]] = obj
        return obj

    def _get(self, object_id: str | None, object_name: str) -> Json | None:
        obj = self._objects.get(object_id or "")
        return obj if obj is not None and obj["object"] == object_name else None

    def _require(
        self, object_id: str, object_name: str, param: str = "id", status: int = 404
    ) -> Json:
        obj = self._get(object_id, object_name)
        if obj is None:
            raise _no_such(object_name, object_id, param, status)
        return obj

    def _ref(self, params: Json, name: str, object_name: str) -> str | None:
        """An optional id parameter that must name an existing object (400 otherwise)."""
        object_id = _str(params, name)
        if object_id is not None:
            self._require(object_id, object_name, param=name, status=400)
        return object_id

    def _retriever(self, object_name: str) -> Handler:
        def retrieve(params: Json, object_id: str) -> Json:
            return self._require(object_id, object_name)

        return retrieve

    # customers and payment methods

    def _create_customer(self, params: Json) -> Json:
        fields = {
            "email": _short_str(params, "email", 512),
            "name": _short_str(params, "name", 256),
            "description": _str(params, "description"),
            "metadata": _metadata(params),
            "invoice_settings": {"default_payment_method": None},
        }
        return self._new("customer", "cus_", fields)

    def _new_payment_method(
        self, brand: str, last4: str, customer: str | None, object_id: str = ""
    ) -> Json:
        card = {
            "brand": brand,
            "last4": last4,
            "exp_month": 12,
            "exp_year": 2034,
            "funding": "credit",
            "country": "US",
        }
        fields = {"type": "card", "card": card, "customer": customer, "metadata": {}}
        return self._new("payment_method", "pm_", fields, object_id)

    def _seed_test_payment_methods(self) -> None:
        for object_id, (brand, last4, behaviour) in TEST_PAYMENT_METHODS.items():
            self._new_payment_method(brand, last4, None, object_id)
            if behaviour != "succeed":
                self._behaviours[object_id] = _Behaviour(behaviour)

    # checkout sessions

    def _create_checkout_session(self, params: Json) -> Json:
        mode = _str(params, "mode", required=True)
        if mode not in ("payment", "setup"):
            message = f"Invalid mode: {mode} (the fake supports payment and setup)"
            raise StripeApiError(400, message, param="mode")
        if mode == "payment":
            amount, currency = _line_items_total(params)
        else:
            amount, currency = None, _str(params, "currency")
        fields = {
            "mode": mode,
            "status": "open",
            # Stripe reports setup-mode sessions as not needing payment from the start.
            "payment_status": "unpaid" if mode == "payment" else "no_payment_required",
            "amount_total": amount,
            "amount_subtotal": amount,
            "currency": currency,
            "customer": self._ref(params, "customer", "customer"),
            "customer_email": _str(params, "customer_email"),
            "client_reference_id": _str(params, "client_reference_id"),
            "metadata": _metadata(params),
            "success_url": _str(params, "success_url"),
            "cancel_url": _str(params, "cancel_url"),
            "payment_method_types": params.get("payment_method_types") or ["card"],
            "payment_intent": None,
            "setup_intent": None,
            "expires_at": _expires_at(params),
        }
        session = self._new("checkout.session", "cs_test_", fields)
        session["url"] = f"{self.url}/checkout/{session['id']}"
        self._payment_intent_data[session["id"]] = _hash(params, "payment_intent_data")
        return session

    def _expire_session_api(self, params: Json, session_id: str) -> Json:
        with self._lock:
            session = self._open_session(session_id)
            session["status"] = "expired"
            self.event_for("checkout.session.expired", session)  # Stripe sends it too
            return session

    def _open_session(self, session_id: str) -> Json:
        session = self._require(session_id, "checkout.session")
        if session["status"] != "open":
            message = f"Checkout Session {session_id} is {session['status']}, not open."
            raise StripeApiError(400, message)
        return session

    def _session_payment_intent(self, session: Json, card: Json) -> Json:
        """The session's PaymentIntent, created at the first attempt to pay and kept for the
        next ones (a declined card, then another), now with this card."""
        intent = self._get(session["payment_intent"], "payment_intent")
        if intent is not None:
            intent["payment_method"] = card["id"]
            return intent
        # Like Stripe, the PaymentIntent gets payment_intent_data[metadata], not the
        # session's own metadata.
        data = self._payment_intent_data.get(session["id"], {})
        intent = self._new_payment_intent(
            amount=session["amount_total"],
            currency=session["currency"],
            customer=session["customer"],
            payment_method=card["id"],
            metadata=_metadata(data),
        )
        session["payment_intent"] = intent["id"]
        return intent

    def _pay_session(self, session: Json, card: Json, paid: bool) -> None:
        intent = self._session_payment_intent(session, card)
        if paid:
            self._succeed(intent)
        else:
            intent["status"] = "processing"
        session["payment_intent"] = intent["id"]
        session["payment_status"] = "paid" if paid else "unpaid"

    def _set_up_session(self, session: Json, card: Json) -> None:
        intent = self._new_setup_intent(session["customer"], card["id"], "succeeded", {})
        session["setup_intent"] = intent["id"]

    # payment intents

    def _create_payment_intent(self, params: Json) -> Json:
        amount = _int(params, "amount", required=True)
        if not amount:
            raise StripeApiError(400, "Amount must be at least 1.", param="amount")
        currency = str(_str(params, "currency", required=True)).lower()
        _check_minimum_charge(amount, currency, "Amount", "amount")
        customer = self._ref(params, "customer", "customer")
        payment_method = self._ref(params, "payment_method", "payment_method")
        confirm, off_session = _bool(params, "confirm"), _off_session(params)
        _check_confirmable(confirm, off_session, payment_method)
        if confirm:
            self._take_server_error(payment_method)  # before any state changes
        intent = self._new_payment_intent(
            amount=amount,
            currency=currency,
            customer=customer,
            payment_method=payment_method,
            metadata=_metadata(params),
            description=_str(params, "description"),
            setup_future_usage=_str(params, "setup_future_usage"),
        )
        if confirm:
            self._confirm(intent, off_session)
            self._take_saved_server_error(payment_method, after_charge=True)
        return intent

    def _list_payment_intents(self, params: Json) -> Json:
        """Newest first, optionally one customer's, as GET /v1/payment_intents answers."""
        customer = _str(params, "customer")
        limit = _int(params, "limit") or 10
        intents = [
            self._expanded(copy.deepcopy(obj), None)
            for obj in reversed(self._objects.values())
            if obj["object"] == "payment_intent"
            and (customer is None or obj["customer"] == customer)
        ]
        return {
            "object": "list",
            "url": "/v1/payment_intents",
            "has_more": len(intents) > limit,
            "data": intents[:limit],
        }

    def _new_payment_intent(self, **fields: Any) -> Json:
        has_card = fields["payment_method"] is not None
        defaults = {
            "amount_received": 0,
            "capture_method": "automatic",
            "confirmation_method": "automatic",
            "description": None,
            "latest_charge": None,
            "last_payment_error": None,
            "next_action": None,
            "payment_method_types": ["card"],
            "setup_future_usage": None,
            "status": "requires_confirmation" if has_card else "requires_payment_method",
        }
        intent = self._new("payment_intent", "pi_", {**defaults, **fields})
        intent["client_secret"] = f"{intent['id']}_secret_{new_id('')}"
        return intent

    def _behaviour_for(self, payment_method: str | None) -> _Behaviour:
        return self._behaviours.get(payment_method or "", self._default_behaviour)

    def _take_server_error(self, payment_method: str | None) -> None:
        behaviour = self._behaviour_for(payment_method)
        if behaviour.kind == "server_error" and behaviour.failures_left > 0:
            behaviour.failures_left -= 1
            raise StripeApiError(500, "An unknown error occurred (injected).", type_="api_error")
        self._take_saved_server_error(payment_method, after_charge=False)

    def _take_saved_server_error(self, payment_method: str | None, *, after_charge: bool) -> None:
        behaviour = self._behaviour_for(payment_method)
        kind = "saved_server_error_after_charge" if after_charge else "saved_server_error"
        if behaviour.kind == kind and behaviour.failures_left > 0:
            behaviour.failures_left -= 1
            error = StripeApiError(500, "An unknown error occurred (injected).", type_="api_error")
            error.saved = True
            raise error

    def _confirm(self, intent: Json, off_session: bool) -> None:
        kind = self._behaviour_for(intent["payment_method"]).kind
        if kind in ("succeed", "server_error", *SAVED_ERRORS):
            self._succeed(intent)
        elif kind == "card_declined":
            raise self._decline(intent)
        else:
            self._require_authentication(intent, off_session)

    def _succeed(self, intent: Json) -> None:
        charge = self._new_charge(intent, "succeeded")
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            latest_charge=charge["id"],
            last_payment_error=None,
            next_action=None,
        )

    def _decline(self, intent: Json) -> StripeApiError:
        message = "Your card was declined."
        charge = self._new_charge(intent, "failed", "card_declined", message)
        intent.update(status="requires_payment_method", latest_charge=charge["id"])
        error = {"code": "card_declined", "decline_code": "generic_decline", "message": message}
        return self._card_error(intent, {**error, "charge": charge["id"]})

    def _require_authentication(self, intent: Json, off_session: bool) -> None:
        intent.update(
            status="requires_action",
            next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {}},
        )
        if not off_session:
            return  # the customer is present to authenticate, so this is not an error
        error = {
            "code": "authentication_required",
            "decline_code": "authentication_required",
            "message": "Your card was declined. This transaction requires authentication.",
        }
        raise self._card_error(intent, error)

    def _card_error(self, intent: Json, error: Json) -> StripeApiError:
        payment_method = copy.deepcopy(self._get(intent["payment_method"], "payment_method"))
        intent["last_payment_error"] = {
            "type": "card_error",
            **error,
            "payment_method": payment_method,
        }
        extra = {
            "payment_intent": copy.deepcopy(intent),
            "payment_method": payment_method,
            "doc_url": f"https://stripe.com/docs/error-codes/{error['code'].replace('_', '-')}",
        }
        if "charge" in error:
            extra["charge"] = error["charge"]
        return StripeApiError(
            402,
            error["message"],
            type_="card_error",
            code=error["code"],
            decline_code=error["decline_code"],
            extra=extra,
        )

    def _new_charge(
        self,
        intent: Json,
        status: str,
        failure_code: str | None = None,
        failure_message: str | None = None,
    ) -> Json:
        card = (self._get(intent["payment_method"], "payment_method") or {}).get("card", {})
        succeeded = status == "succeeded"
        fields = {
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if succeeded else 0,
            "amount_refunded": 0,
            "currency": intent["currency"],
            "customer": intent["customer"],
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "payment_method_details": {
                "type": "card",
                "card": {"brand": card.get("brand"), "last4": card.get("last4")},
            },
            "metadata": dict(intent["metadata"]),
            "status": status,
            "paid": succeeded,
            "captured": succeeded,
            "refunded": False,
            "disputed": False,
            "failure_code": failure_code,
            "failure_message": failure_message,
        }
        return self._new("charge", "ch_", fields)

    # setup intents

    def _create_setup_intent(self, params: Json) -> Json:
        customer = self._ref(params, "customer", "customer")
        payment_method = self._ref(params, "payment_method", "payment_method")
        confirm = _bool(params, "confirm")
        if confirm and payment_method is None:
            message = "You cannot confirm this SetupIntent because it's missing a payment method."
            raise StripeApiError(
                400, message, code="setup_intent_unexpected_state", param="payment_method"
            )
        status = "requires_confirmation" if payment_method else "requires_payment_method"
        intent = self._new_setup_intent(
            customer, payment_method, "succeeded" if confirm else status, _metadata(params)
        )
        intent["usage"] = _str(params, "usage") or "off_session"
        return intent

    def _new_setup_intent(
        self, customer: str | None, payment_method: str | None, status: str, metadata: Json
    ) -> Json:
        fields = {
            "customer": customer,
            "payment_method": payment_method,
            "status": status,
            "usage": "off_session",
            "metadata": metadata,
            "payment_method_types": ["card"],
            "last_setup_error": None,
            "next_action": None,
        }
        intent = self._new("setup_intent", "seti_", fields)
        intent["client_secret"] = f"{intent['id']}_secret_{new_id('')}"
        card = self._get(payment_method, "payment_method")
        if status == "succeeded" and card is not None and customer:
            card["customer"] = customer  # a succeeded SetupIntent attaches the card
        return intent

    # refunds and disputes

    def _create_refund(self, params: Json) -> Json:
        charge = self._refundable_charge(params)
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            message = f"Charge {charge['id']} has already been refunded."
            raise StripeApiError(400, message, code="charge_already_refunded")
        amount = _int(params, "amount")
        amount = remaining if amount is None else amount
        if not 0 < amount <= remaining:
            message = f"Refund amount ({amount}) must be between 1 and {remaining}."
            raise StripeApiError(400, message, code="amount_too_large", param="amount")
        refund = self._new(
            "refund",
            "re_",
            {
                "amount": amount,
                "charge": charge["id"],
                "payment_intent": charge["payment_intent"],
                "currency": charge["currency"],
                "status": "succeeded",
                "reason": _str(params, "reason"),
                "failure_reason": None,
                "failure_balance_transaction": None,
                "metadata": _metadata(params),
            },
        )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return refund

    def _refundable_charge(self, params: Json) -> Json:
        charge_id, intent_id = _str(params, "charge"), _str(params, "payment_intent")
        if charge_id:
            return self._require(charge_id, "charge", param="charge", status=400)
        if intent_id:
            return self._succeeded_charge(intent_id, param="payment_intent", status=400)
        message = "One of the following params should be provided: payment_intent or charge."
        raise StripeApiError(400, message, code="parameter_missing")

    def _succeeded_charge(
        self, payment_intent_id: str, param: str = "id", status: int = 404
    ) -> Json:
        intent = self._require(payment_intent_id, "payment_intent", param=param, status=status)
        charge = self._get(intent["latest_charge"], "charge")
        if charge is None or charge["status"] != "succeeded":
            message = f"PaymentIntent {payment_intent_id} has no successful charge."
            raise StripeApiError(400, message, code="charge_not_refundable", param=param)
        return charge

    def _latest_dispute(self, payment_intent_id: str) -> Json:
        for obj in reversed(list(self._objects.values())):
            if obj["object"] == "dispute" and obj["payment_intent"] == payment_intent_id:
                return obj
        raise _no_such("dispute for payment_intent", payment_intent_id, "id", 404)

    # /_fake/... controls for FakeStripeProcess

    def _handle_control(self, method: str, path: str, body: str) -> Reply:
        try:
            payload = json.loads(body) if body else {}
            return json_reply(200, self._control(method, path.removeprefix("/_fake"), payload))
        except StripeApiError as exc:
            return error_reply(exc)
        except (ValueError, KeyError, TypeError) as exc:
            return error_reply(StripeApiError(400, f"Bad control request: {exc!r}"))

    def _control(self, method: str, path: str, payload: Json) -> Any:
        match method, path.strip("/").split("/"):
            case "GET", ["requests"]:
                return self.received_requests()
            case "GET", ["events"]:
                return self.events()
            case "GET", ["objects"]:
                return self.objects()
            case "POST", ["response_delay"]:
                return self.set_response_delay(**payload)
            case "GET", ["objects", object_id]:
                return self.get_object(object_id)
            case "POST", ["reset"]:
                return self.reset()
            case "POST", ["card_behaviour"]:
                return self.set_card_behaviour(**payload)
            case "POST", ["payment_methods"]:
                return self.add_payment_method(**payload)
            case "POST", ["checkout", "sessions", session_id, "complete"]:
                return self.complete_checkout_session(session_id, **payload)
            case "POST", ["checkout", "sessions", session_id, "expire"]:
                return self.expire_checkout_session(session_id)
            case "POST", ["checkout", "sessions", session_id, "decline"]:
                return self.decline_checkout_attempt(session_id)
            case "POST", ["events"]:
                return self.event_for(payload["type"], payload["object"])
            case "POST", ["refunds", refund_id, "fail"]:
                return self.refund_failed_events(refund_id, **payload)
            case "GET", ["payment_intents", intent_id, "latest_refund"]:
                return self.latest_refund(intent_id)
            case "POST", ["payment_intents", intent_id, "events"]:
                options = dict(payload)
                return self.payment_intent_event(intent_id, options.pop("type"), **options)
        raise _unrecognized(method, f"/_fake{path}")

    # hosted checkout page, for browser tests

    def _handle_hosted_checkout(self, method: str, path: str) -> Reply:
        try:
            match method, path.strip("/").split("/"):
                case "GET", ["checkout", session_id]:
                    return self._checkout_page(session_id)
                case "POST", ["checkout", session_id, "pay"]:
                    self.complete_checkout_session(session_id)
                    return self._redirect(session_id, "success_url")
                case "POST", ["checkout", session_id, "cancel"]:
                    return self._redirect(session_id, "cancel_url")
            raise _unrecognized(method, path)
        except StripeApiError as exc:
            return error_reply(exc)

    def _checkout_page(self, session_id: str) -> Reply:
        session = self.get_object(session_id)
        if session["mode"] == "payment":
            summary = f"Pay {session['amount_total']} {session['currency']}"
        else:
            summary = "Save a card for later payments"
        action = f"/checkout/{html.escape(session_id)}"
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<title>Fake Stripe Checkout</title></head><body>"
            f"<h1>Fake Stripe Checkout</h1><p id='summary'>{html.escape(summary)}</p>"
            f"<form method='post' action='{action}/pay'><button id='pay'>Pay</button></form>"
            f"<form method='post' action='{action}/cancel'><button id='cancel'>Cancel</button>"
            "</form></body></html>"
        )
        return Reply(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def _redirect(self, session_id: str, url_field: str) -> Reply:
        target = self.get_object(session_id)[url_field]
        if not target:
            raise StripeApiError(400, f"The session has no {url_field}.")
        location = target.replace("{CHECKOUT_SESSION_ID}", session_id)
        return Reply(303, b"", {"Location": location})


def _check_api_key(authorization: str) -> None:
    if not authorization:
        message = (
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth."
        )
        raise StripeApiError(401, message)
    key = _api_key_from(authorization)
    if not re.fullmatch(r"sk_test_\w+", key):
        raise StripeApiError(401, f"Invalid API Key provided: {key[:8]}****{key[-4:]}")


def _api_key_from(authorization: str) -> str:
    # The library sends Bearer; Stripe also takes Basic with the key as user (curl -u sk_test_x:).
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credentials, validate=True).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


def _check_confirmable(confirm: bool, off_session: bool, payment_method: str | None) -> None:
    if off_session and not confirm:
        message = "off_session can only be used when confirm=true."
        raise StripeApiError(400, message, param="off_session")
    if confirm and payment_method is None:
        message = "You cannot confirm this PaymentIntent because it's missing a payment method."
        raise StripeApiError(
            400, message, code="payment_intent_unexpected_state", param="payment_method"
        )


# --- HTTP server -------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeStripe


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            reply = self.server.fake.handle(method, self.path, headers, body)
        except Exception as exc:  # a bug in the fake: show it to the client, not just stderr
            reply = error_reply(
                StripeApiError(500, f"fake Stripe crashed: {exc!r}", type_="api_error")
            )
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away while its answer was delayed (e.g. a killed worker)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: received_requests() is the log, and stderr noise hides test output."""


# --- webhooks ----------------------------------------------------------------------------


def sign_payload(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``payload``, using Stripe's v1 scheme."""
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    signed_at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{signed_at}.{text}".encode(), hashlib.sha256)
    return f"t={signed_at},v1={digest.hexdigest()}"


def signed_event(event: Json, secret: str, timestamp: int | None = None) -> tuple[bytes, str]:
    """The JSON body and ``Stripe-Signature`` header Stripe would deliver for ``event``."""
    payload = json.dumps(event, indent=2).encode()
    return payload, sign_payload(payload, secret, timestamp)


def send_webhook(
    url: str, event: Json, secret: str, timestamp: int | None = None
) -> tuple[int, bytes]:
    """POST a signed event to a 127.0.0.0/8 URL; return the status and body."""
    payload, signature = signed_event(event, secret, timestamp)
    headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
    return _local_request("POST", url, payload, headers)


def require_loopback_host(host: str) -> None:
    """Refuse anything outside 127.0.0.0/8 ("localhost" may resolve to ::1 or worse)."""
    try:
        if ipaddress.ip_address(host) in LOOPBACK_NETWORK:
            return
    except ValueError:
        pass
    raise ValueError(f"{host!r} is not an address in 127.0.0.0/8")


def require_loopback_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"{url!r} is not an http:// URL")
    require_loopback_host(parts.hostname)
    return url


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect could leave 127.0.0.0/8; surface it as the 3xx instead


# No ProxyHandler entries: HTTP(S)_PROXY from the environment must never reroute loopback calls.
_LOCAL_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)


def _local_request(
    method: str, url: str, data: bytes | None, headers: dict[str, str]
) -> tuple[int, bytes]:
    # Both S310s: the URL was just checked to be http:// on 127.0.0.0/8.
    request = urllib.request.Request(require_loopback_url(url), data, headers, method=method)  # noqa: S310
    try:
        with _LOCAL_OPENER.open(request, timeout=30) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


# --- subprocess mode ---------------------------------------------------------------------


class FakeStripeProcess:
    """FakeStripe in a child process, with the test controls reached over ``/_fake/...``.

    For tests whose code under test runs in another process (gunicorn, a celery worker):
    point that process at ``.url`` and drive the fake from the test.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> FakeStripeProcess:
        command = [sys.executable, "-m", "tests.fakes.stripe_server", "--port", str(self.port)]
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline().strip()  # printed once the server is listening
        if not line:
            self.stop()
            raise RuntimeError("the fake Stripe process exited before printing its URL")
        self.url = require_loopback_url(line)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> FakeStripeProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, method: str, path: str, payload: Json | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        status, body = _local_request(method, f"{self.url}/_fake{path}", data, headers)
        result = json.loads(body)
        if status != 200:
            raise RuntimeError(f"fake Stripe control {method} {path} failed: {result}")
        return result

    def received_requests(self) -> list[Json]:
        return self._call("GET", "/requests")

    def events(self) -> list[Json]:
        return self._call("GET", "/events")

    def get_object(self, object_id: str) -> Json:
        return self._call("GET", f"/objects/{object_id}")

    def objects(self, object_name: str | None = None) -> list[Json]:
        found = self._call("GET", "/objects")
        return [obj for obj in found if object_name is None or obj["object"] == object_name]

    def set_response_delay(
        self,
        seconds: float,
        path: str = "/v1/payment_intents",
        method: str = "POST",
        times: int = 1,
    ) -> None:
        payload = {"seconds": seconds, "path": path, "method": method, "times": times}
        self._call("POST", "/response_delay", payload)

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    def set_card_behaviour(
        self, behaviour: str, payment_method: str | None = None, times: int = 1
    ) -> None:
        payload = {"behaviour": behaviour, "payment_method": payment_method, "times": times}
        self._call("POST", "/card_behaviour", payload)

    def add_payment_method(
        self, brand: str = "visa", last4: str = "4242", customer: str | None = None
    ) -> Json:
        payload = {"brand": brand, "last4": last4, "customer": customer}
        return self._call("POST", "/payment_methods", payload)

    def complete_checkout_session(self, session_id: str, paid: bool = True) -> Json:
        return self._call("POST", f"/checkout/sessions/{session_id}/complete", {"paid": paid})

    def expire_checkout_session(self, session_id: str) -> Json:
        return self._call("POST", f"/checkout/sessions/{session_id}/expire", {})

    def decline_checkout_attempt(self, session_id: str) -> Json:
        return self._call("POST", f"/checkout/sessions/{session_id}/decline", {})

    def event_for(self, event_type: str, obj: Json) -> Json:
        return self._call("POST", "/events", {"type": event_type, "object": obj})

    def payment_intent_event(self, payment_intent_id: str, event_type: str, **options: Any) -> Json:
        payload = {"type": event_type, **options}
        return self._call("POST", f"/payment_intents/{payment_intent_id}/events", payload)

    def refund_failed_events(
        self, refund_id: str, failure_reason: str = "expired_or_canceled_card"
    ) -> list[Json]:
        payload = {"failure_reason": failure_reason}
        return self._call("POST", f"/refunds/{refund_id}/fail", payload)

    def latest_refund(self, payment_intent_id: str) -> Json:
        return self._call("GET", f"/payment_intents/{payment_intent_id}/latest_refund")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Stripe API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default=LOOPBACK, help="must be in 127.0.0.0/8")
    args = parser.parse_args(argv)
    fake = FakeStripe(port=args.port, host=args.host).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print(fake.url, flush=True)  # FakeStripeProcess waits for this line
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
