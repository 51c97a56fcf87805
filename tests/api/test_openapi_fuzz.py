"""The OpenAPI document at /v1/openapi.json, and a schemathesis fuzz of every operation in it.

Requests go through Django's test client, inside the test's database transaction (calling the
WSGI application directly would let Django close that connection at the end of each request).
Each example runs in a savepoint that is rolled back, so examples cannot leak into each other
and hypothesis can replay any of them exactly.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import api_token_create
from billing.billing_type.services import billing_type_set
from billing.developer_apps.keys import key_prefix
from billing.developer_apps.services import app_create
from billing.ledger.entries import Actor
from billing.ledger.selectors import ledger_mismatches
from billing.ledger.services import wallet_credit
from billing.models import BillingType, BillingTypeChange
from billing.money import NANOS_PER_UNIT, Money
from billing.subscriptions.services import subscription_purchase
from tests.api.conftest import billing_state
from tests.factories import AdminFactory, ApiProductFactory, DeveloperFactory, published_plan

pytestmark = pytest.mark.django_db

OPERATIONS = {
    ("GET", "/v1/organizations/{org}/developers/{email}/monetizationConfig"),
    ("PUT", "/v1/organizations/{org}/developers/{email}/monetizationConfig"),
    ("GET", "/v1/organizations/{org}/developers/{email}/balance"),
    ("POST", "/v1/organizations/{org}/developers/{email}/balance:credit"),
    ("POST", "/v1/organizations/{org}/developers/{email}/balance:debit"),
    ("POST", "/v1/organizations/{org}/developers/{email}/balance:adjust"),
    ("POST", "/v1/organizations/{org}/apiproducts"),
    ("GET", "/v1/organizations/{org}/apiproducts"),
    ("GET", "/v1/organizations/{org}/apiproducts/{name}"),
    ("PUT", "/v1/organizations/{org}/apiproducts/{name}"),
    ("DELETE", "/v1/organizations/{org}/apiproducts/{name}"),
    ("POST", "/v1/organizations/{org}/apiproducts/{name}/rateplans"),
    ("GET", "/v1/organizations/{org}/apiproducts/{name}/rateplans"),
    ("GET", "/v1/organizations/{org}/apiproducts/{name}/rateplans/{plan_id}"),
    ("PUT", "/v1/organizations/{org}/apiproducts/{name}/rateplans/{plan_id}"),
    ("DELETE", "/v1/organizations/{org}/apiproducts/{name}/rateplans/{plan_id}"),
    ("POST", "/v1/organizations/{org}/developers/{email}/subscriptions"),
    ("GET", "/v1/organizations/{org}/developers/{email}/subscriptions"),
    ("GET", "/v1/organizations/{org}/developers/{email}/subscriptions/{subscription_id}"),
    ("POST", "/v1/organizations/{org}/developers/{email}/subscriptions/{subscription_id}:expire"),
    ("POST", "/v1/organizations/{org}/developers/{email}/apps"),
    ("GET", "/v1/organizations/{org}/developers/{email}/apps"),
    ("GET", "/v1/organizations/{org}/developers/{email}/apps/{app_name}"),
    ("DELETE", "/v1/organizations/{org}/developers/{email}/apps/{app_name}"),
    ("POST", "/v1/organizations/{org}/developers/{email}/apps/{app_name}/keys"),
    ("DELETE", "/v1/organizations/{org}/developers/{email}/apps/{app_name}/keys/{key_prefix}"),
    ("POST", "/v1/organizations/{org}/limitsCheck"),
    ("POST", "/v1/organizations/{org}/usage:batch"),
}
GOOGLE_STATUSES = {
    400: {"INVALID_ARGUMENT", "FAILED_PRECONDITION"},
    401: {"UNAUTHENTICATED"},
    403: {"PERMISSION_DENIED"},
    404: {"NOT_FOUND"},
    409: {"ALREADY_EXISTS"},
}
CONFIG = schemathesis.Config()
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def openapi_document() -> dict[str, Any]:
    response = Client().get("/v1/openapi.json")
    assert response.status_code == HTTPStatus.OK
    return response.json()


def test_openapi_document_is_valid_and_lists_every_operation(db):
    document = openapi_document()

    assert document["openapi"].startswith("3.")
    schema = schemathesis.openapi.from_dict(document, config=CONFIG)
    schema.validate()  # against the OpenAPI meta-schema; raises on any violation
    listed = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert listed == OPERATIONS
    assert document["components"]["securitySchemes"]["TokenAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }


# The document allows any three capital letters as currencyCode, any string as transactionId
# and any integer as an amount, so random values almost never get past validation. Each field is swapped for
# a real value four times in five, independently, so that a generated oddity in one field
# meets real values in the others and reaches the ledger.
def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keep_generated = st.integers(min_value=0, max_value=4).map(lambda n: n == 0)
    return st.tuples(keep_generated, strategy).map(lambda pair: None if pair[0] else pair[1])


REALISTIC = st.fixed_dictionaries(
    {
        "currencyCode": _maybe(st.sampled_from(["USD", "JPY", "INR"])),
        "units": _maybe(st.integers(min_value=1, max_value=10**6).map(str)),
        "nanos": _maybe(st.integers(min_value=0, max_value=999_999_999)),
        "billingType": _maybe(st.sampled_from(BillingType.values)),
        "transactionId": _maybe(st.uuids().map(str)),
        "apiproduct": _maybe(st.sampled_from(["spare-api", "weather-api"])),
        "plainPlan": _maybe(st.just(True)),
        "apiProducts": _maybe(st.sampled_from([["weather-api"], [], ["spare-api"]])),
    }
)
# A generated rate plan almost never obeys the catalog's rules (bands that meet, one currency,
# one published plan at a time): four times in five it is made a plain draft in USD.
PLAIN_PLAN = {
    "currencyCode": "USD",
    "billingPeriod": "MONTHLY",
    "fixedFeeFrequency": 1,
    "state": "DRAFT",
}
PLAN_RULES = (
    "name",
    "apiproduct",
    "createdAt",
    "lastModifiedAt",
    "consumptionPricingType",
    "consumptionPricingRates",
    "revenueShareType",
    "revenueShareRates",
    "startTime",
    "endTime",
)


def _make_realistic(case: Any, values: dict[str, Any]) -> None:
    if not isinstance(case.body, dict):
        return
    for field in ("transactionAmount", "adjustment", "setupFee", "fixedRecurringFee"):
        if isinstance(case.body.get(field), dict):
            for key in ("currencyCode", "units", "nanos"):
                if values[key] is not None:
                    case.body[field][key] = values[key]
    for key in ("billingType", "transactionId", "apiproduct"):
        if key in case.body and values[key] is not None:
            case.body[key] = values[key]
    if "/apps" in case.path and values["apiProducts"] is not None:
        case.body["apiProducts"] = values["apiProducts"]
    if "/rateplans" in case.path and values["plainPlan"]:
        case.body.update(PLAIN_PLAN)
        for key in PLAN_RULES:
            case.body.pop(key, None)
        for fee in ("setupFee", "fixedRecurringFee"):
            if isinstance(case.body.get(fee), dict):
                case.body[fee]["currencyCode"] = "USD"


def _send(client: Client, case: Any) -> tuple[Any, schemathesis.Response]:
    """Send a generated case through Django; also return it as a schemathesis Response."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    if "json" in kwargs:
        data: bytes | str = json.dumps(kwargs["json"])
    else:
        data = kwargs.get("data") or b""
    headers = {"Authorization": kwargs["headers"]["Authorization"]}
    url = urlsplit(kwargs["url"])
    response = client.generic(
        kwargs["method"],
        url.path,
        data=data,
        content_type=kwargs["headers"].get("Content-Type", "application/json"),
        headers=headers,
    )
    prepared = requests.Request(
        kwargs["method"], kwargs["url"], headers=headers, data=data
    ).prepare()
    wrapped = schemathesis.Response(
        status_code=response.status_code,
        headers={name.lower(): [value] for name, value in response.items()},
        content=response.content,
        request=prepared,
        elapsed=0.0,
        verify=True,
    )
    return response, wrapped


def _assert_google_error(response: Any) -> None:
    body = response.json()
    error = body["error"]
    assert set(body) == {"error"} and set(error) == {"code", "message", "status"}
    assert error["code"] == response.status_code
    assert error["status"] in GOOGLE_STATUSES[response.status_code]
    assert isinstance(error["message"], str) and error["message"].strip()


def _real_path_parameters(path: str, prepaid: Any) -> list[dict[str, str]]:
    """Names that exist, for the generated cases to reach past the 404s: a product the prepaid
    developer bought (its plan, the subscription, an app calling it and the app's key) and one
    nobody bought (deletable, buyable)."""
    bought = published_plan(ApiProductFactory(name="weather-api"), setup="1", currency="USD")
    spare = published_plan(ApiProductFactory(name="spare-api"), recurring="2", currency="USD")
    subscription = subscription_purchase(
        account=prepaid, product=bought.product, actor=Actor.system()
    ).subscription
    _, key = app_create(
        account=prepaid, name="fuzz-app", products=[bought.product], actor=Actor.system()
    )
    candidates = [
        {
            "email": "prepaid@example.com",
            "name": "weather-api",
            "plan_id": bought.public_id,
            "app_name": "fuzz-app",
            "key_prefix": key_prefix(key),
        },
        {"email": "postpaid@example.com", "name": "spare-api", "plan_id": spare.public_id},
    ]
    names = set(re.findall(r"{(\w+)}", path))
    return [
        {
            key: str(value)
            for key, value in {
                "org": "demo-org",
                **c,
                "subscription_id": subscription.public_id,
            }.items()
            if key in names
        }
        for c in candidates
    ]


@pytest.mark.parametrize("method, path", sorted(OPERATIONS), ids=lambda value: value.split("/")[-1])
def test_fuzzed_requests_never_fail_on_the_server(method, path):
    """Generated requests, valid and invalid, with a portal admin's token: never a 5xx, every
    answer as documented, and every 4xx in the Google error shape with nothing changed."""
    admin = AdminFactory(portal_admin=True)
    # and a gateway's permission, so the limits check and usage are fuzzed past their 403 too
    admin.user_permissions.add(Permission.objects.get(codename="report_usage"))
    _, raw = api_token_create(user=admin, name="fuzz")
    prepaid = DeveloperFactory(email="prepaid@example.com")
    billing_type_set(
        account=prepaid.billing_account,
        billing_type=BillingType.PREPAID,
        changed_by=None,
        source=BillingTypeChange.Source.API,
    )
    for currency in ("USD", "JPY", "INR"):
        wallet_credit(
            account=prepaid.billing_account,
            money=Money(10**7 * NANOS_PER_UNIT, currency),
            transaction_id=f"fuzz-funds-{currency}",
            actor=Actor.system(),
        )
    DeveloperFactory(email="postpaid@example.com")
    operation = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)[path][method]
    auth = {"Authorization": f"Bearer {raw}"}
    real = _real_path_parameters(path, prepaid.billing_account)
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE, headers=auth),
        operation.as_strategy(
            GenerationMode.POSITIVE, headers=auth, path_parameters={"org": "demo-org"}
        ),
        *(
            operation.as_strategy(GenerationMode.POSITIVE, headers=auth, path_parameters=p)
            for p in real
        ),
    ]
    if method != "GET":
        strategies += [
            operation.as_strategy(GenerationMode.NEGATIVE, headers=auth, path_parameters=p)
            for p in real
        ]
    client = Client(raise_request_exception=False)
    seen: set[int] = set()

    @settings(
        max_examples=50,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=st.one_of(strategies), realistic=REALISTIC)
    def fuzz(case: Any, realistic: dict[str, Any]) -> None:
        _make_realistic(case, realistic)
        with transaction.atomic():
            before = billing_state()
            response, wrapped = _send(client, case)
            seen.add(response.status_code)
            assert response.status_code < 500, case.as_curl_command()
            case.validate_response(wrapped, checks=CHECKS)
            if 400 <= response.status_code < 500:
                _assert_google_error(response)
                assert billing_state() == before
            assert ledger_mismatches() == []  # every wallet still equals the sum of its entries
            transaction.set_rollback(True)

    fuzz()
    # The fuzz reached past authentication and validation, not only the error paths.
    assert HTTPStatus.OK in seen, seen


def test_every_billing_type_the_document_allows_is_accepted():
    """The document typed billingType as any string, so a client built from it could not know
    the two values the endpoint takes: generated bodies were refused with 400."""
    admin = AdminFactory(portal_admin=True)
    _, raw = api_token_create(user=admin, name="document")
    DeveloperFactory(email="someone@example.com")
    path = "/v1/organizations/{org}/developers/{email}/monetizationConfig"
    operation = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)[path]["PUT"]
    strategy = operation.as_strategy(
        GenerationMode.POSITIVE,
        headers={"Authorization": f"Bearer {raw}"},
        path_parameters={"org": "demo-org", "email": "someone@example.com"},
    )
    client = Client(raise_request_exception=False)
    sent: set[str] = set()

    @settings(max_examples=30, deadline=None, derandomize=True, database=None)
    @given(case=strategy)
    def put(case: Any) -> None:
        response, _ = _send(client, case)
        assert response.status_code == HTTPStatus.OK, (case.body, response.content)
        sent.add(case.body["billingType"])

    put()
    assert sent == set(BillingType.values)


def test_the_document_allows_only_three_capital_letters_as_a_currency_code():
    """The endpoints refuse anything else; the document said any string."""
    schema = openapi_document()["components"]["schemas"]["ApigeeMoney"]["properties"]
    currency = schema["currencyCode"]

    assert currency["type"] == "string"
    # JSON Schema's pattern is a search, like re.search.
    assert re.search(currency.get("pattern", ""), "USD")
    for refused in ("usd", "", "US", "USDX", "U$D"):
        assert not re.search(currency.get("pattern", ""), refused), refused
