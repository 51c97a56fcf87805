"""The gateway's usage report, POST /v1/organizations/{org}/usage:batch: one result per event
in order, Money charges, duplicates and rejects per item, and who may send it ("Report usage",
which a gateway's user holds and the Portal admin group does not)."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.utils import timezone

from billing.catalog.rates import Band
from billing.ledger.entries import Actor
from billing.models import LedgerEntry, UsageEvent
from billing.subscriptions.services import subscription_purchase
from tests.api.conftest import billing_state, error_of
from tests.billing.usage.helpers import app_with_key
from tests.conftest import NANOS_PER_UNIT
from tests.factories import ApiProductFactory, UserFactory, published_plan

pytestmark = pytest.mark.django_db

PATH = f"/v1/organizations/{settings.PORTAL_ORG}/usage:batch"


@pytest.fixture
def gateway():
    user = UserFactory(email="gateway@example.com")
    user.user_permissions.add(Permission.objects.get(codename="report_usage"))
    return user


@pytest.fixture
def key(developer):
    product = ApiProductFactory(name="weather-api", display_name="Weather API")
    published_plan(
        product,
        consumption_pricing_type="FIXED_PER_UNIT",
        bands=[Band(0, 0, NANOS_PER_UNIT * 3 // 2)],  # 1.50 a call
    )
    account = developer.billing_account
    subscription_purchase(account=account, product=product, actor=Actor.system())
    return app_with_key(account, product)[2]


def event(event_id: str, key: str, **fields) -> dict:
    now_ms = str(int(timezone.now().timestamp() * 1000))
    return {"id": event_id, "consumerKey": key, "apiproduct": "weather-api", "time": now_ms} | (
        fields
    )


def test_results_one_per_event_in_order(api, gateway, key):
    token = api.token_for(gateway)
    body = {
        "events": [
            event("a", key, units=2),
            event("b", key, perUnitPriceMultiplier="0.5"),
            event("a", key),
            event("c", "not-a-key"),
            event("d", key, units="many"),
            {"id": "e"},
        ]
    }

    response = api.call("POST", PATH, body, token=token)

    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json() == {
        "results": [
            {"id": "a", "status": "RATED", "charge": {"currencyCode": "USD", "units": "3"}},
            {
                "id": "b",
                "status": "RATED",
                "charge": {"currencyCode": "USD", "units": "0", "nanos": 750_000_000},
            },
            {"id": "a", "status": "DUPLICATE"},
            {"id": "c", "status": "REJECTED", "reason": "INVALID_KEY"},
            {"id": "d", "status": "REJECTED", "reason": "INVALID_UNITS"},
            {"id": "e", "status": "REJECTED", "reason": "INVALID_KEY"},
        ]
    }
    entry = LedgerEntry.objects.get(kind="USAGE")
    assert entry.amount == -NANOS_PER_UNIT * 15 // 4  # 3.75, one debit for the batch
    assert entry.actor_user == gateway

    again = api.call("POST", PATH, {"events": [event("a", key), event("b", key)]}, token=token)

    assert [r["status"] for r in again.json()["results"]] == ["DUPLICATE", "DUPLICATE"]
    assert UsageEvent.objects.count() == 2


@pytest.mark.parametrize(
    "who", ["developer", "admin_without_permission", "portal_admin", "anonymous"]
)
def test_only_a_gateway_may_report_usage(api, request, who, key):
    token = None if who == "anonymous" else api.token_for(request.getfixturevalue(who))
    before = billing_state()

    response = api.call("POST", PATH, {"events": [event("x", key)]}, token=token)

    if token is None:
        error_of(response, HTTPStatus.UNAUTHORIZED)
    else:
        assert "billing.report_usage" in error_of(response, HTTPStatus.FORBIDDEN)["message"]
    assert billing_state() == before
    assert not UsageEvent.objects.exists()


def test_at_most_a_thousand_events(api, gateway, key):
    token = api.token_for(gateway)

    response = api.call(
        "POST", PATH, {"events": [event(f"e{n}", key) for n in range(1001)]}, token=token
    )

    assert "events" in error_of(response, HTTPStatus.BAD_REQUEST)["message"]
    assert not UsageEvent.objects.exists()
    full = api.call(
        "POST", PATH, {"events": [event(f"e{n}", key) for n in range(1000)]}, token=token
    )
    assert full.status_code == HTTPStatus.OK
    assert {r["status"] for r in full.json()["results"]} == {"RATED"}
    assert UsageEvent.objects.count() == 1000


def test_an_empty_batch_and_an_unknown_organization(api, gateway, key):
    token = api.token_for(gateway)
    error_of(api.call("POST", PATH, {"events": []}, token=token), HTTPStatus.BAD_REQUEST)
    error_of(
        api.call("POST", PATH, {"events": [event("a", key)], "extra": 1}, token=token),
        HTTPStatus.BAD_REQUEST,
    )
    response = api.call(
        "POST", "/v1/organizations/other/usage:batch", {"events": [event("a", key)]}, token=token
    )
    error_of(response, HTTPStatus.NOT_FOUND)
    assert not UsageEvent.objects.exists()
