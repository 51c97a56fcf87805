"""Developer subscriptions under /v1/organizations/{org}/developers/{email}/subscriptions:
buying an API product from the wallet, once (an Idempotency-Key replays, a second open one is
409), refused with the exact shortfall and nothing charged, read back and expired, by the
developer themself or whoever holds the permission; and twenty purchases at once on PostgreSQL
that make one subscription and one charge."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone

from accounts.models import User
from billing.catalog.services import PlanSpec, rate_plan_create
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import BillingAccount, LedgerEntry, RatePlan, Subscription, Wallet
from billing.subscriptions.fees import purchase_quote
from billing.subscriptions.services import subscription_purchase
from tests.api.conftest import Api, billing_state, developer_path, error_of
from tests.conftest import usd
from tests.factories import AdminFactory, ApiProductFactory, DeveloperFactory, published_plan

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---- helpers ----


def ms(at: datetime) -> str:
    return str((at - EPOCH) // timedelta(milliseconds=1))


def from_ms(value: str) -> datetime:
    return EPOCH + timedelta(milliseconds=int(value))


def buy(
    api: Api,
    token: str | None,
    email: str,
    body: Any,
    *,
    key: str | None = None,
    client: Client | None = None,
) -> HttpResponse:
    """POST …/subscriptions, with an Idempotency-Key header when given."""
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if key is not None:
        headers["Idempotency-Key"] = key
    return (client or api.client).post(
        developer_path(email, "subscriptions"),
        data=json.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def fund(account: BillingAccount, amount: str) -> None:
    wallet_credit(
        account=account,
        money=usd(amount),
        transaction_id=f"funds-{amount}-{account.pk}",
        actor=Actor.system(),
    )


def fees(account: BillingAccount) -> list[tuple[str, int]]:
    entries = LedgerEntry.objects.filter(wallet__billing_account=account, kind="FEE")
    return list(entries.order_by("pk").values_list("transaction_id", "amount"))


def balance(account: BillingAccount) -> int:
    return Wallet.objects.get(billing_account=account, currency="USD").balance


def state() -> dict[str, Any]:
    """Money and subscriptions: what a purchase or an expiry could change."""
    return {
        **billing_state(),
        "subscriptions": list(Subscription.objects.order_by("pk").values()),
    }


@pytest.fixture
def weather(db: None) -> RatePlan:
    """Weather API on a published plan: $10 setup, $31 a month."""
    product = ApiProductFactory(name="weather-api", display_name="Weather API")
    return published_plan(product, setup="10", recurring="31")


@pytest.fixture
def owner_token(api: Api, developer: User) -> str:
    return api.token_for(developer)


@pytest.fixture
def admin_token(api: Api, portal_admin: User) -> str:
    return api.token_for(portal_admin)


# ---- buying ----


@pytest.mark.django_db
def test_a_developer_buys_a_product_and_pays_the_first_fees_from_the_wallet(
    api, developer, prepaid_account, owner_token, weather
):
    fund(prepaid_account, "100")
    before = timezone.now()

    response = buy(api, owner_token, developer.email, {"apiproduct": "weather-api"})

    assert response.status_code == HTTPStatus.OK, response.content
    assert "Idempotent-Replayed" not in response.headers
    answer = response.json()
    subscription = Subscription.objects.get()
    assert answer == {
        "name": str(subscription.public_id),
        "apiproduct": "weather-api",
        "startTime": ms(subscription.start_time),
        "createdAt": ms(subscription.created_at),
        "lastModifiedAt": ms(subscription.updated_at),
    }
    assert before - timedelta(seconds=1) <= from_ms(answer["startTime"]) <= timezone.now()
    quote = purchase_quote(weather, subscription.start_time)
    assert fees(prepaid_account) == [
        (f"purchase:{subscription.public_id}:setup", -10 * 10**9),
        (f"fee:{subscription.public_id}:{subscription.start_time:%Y-%m}", -quote.first_fee.nanos),
    ]
    assert quote.first_fee.nanos > 0
    assert balance(prepaid_account) == usd("90").nanos - quote.first_fee.nanos
    entry = LedgerEntry.objects.filter(kind="FEE").first()
    assert entry is not None and (entry.actor_user, entry.actor_token_id) == (
        developer,
        developer.api_tokens.get().pk,
    )

    listed = api.call("GET", developer_path(developer.email, "subscriptions"), token=owner_token)
    one = api.call(
        "GET", developer_path(developer.email, f"subscriptions/{answer['name']}"), token=owner_token
    )
    assert listed.json() == {"developerSubscriptions": [answer]}
    assert one.json() == answer


@pytest.mark.django_db
def test_a_future_start_is_checked_now_and_charged_later(
    api, developer, prepaid_account, owner_token, weather
):
    fund(prepaid_account, "100")
    start = (timezone.now() + timedelta(days=3)).replace(microsecond=0)

    response = buy(
        api, owner_token, developer.email, {"apiproduct": "weather-api", "startTime": ms(start)}
    )

    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["startTime"] == ms(start)
    assert Subscription.objects.get().status(timezone.now()) == "Future"
    assert fees(prepaid_account) == []


@pytest.mark.django_db
def test_insufficient_funds_names_the_shortfall_and_charges_nothing(
    api, developer, prepaid_account, owner_token, weather
):
    fund(prepaid_account, "5")
    first_fee = purchase_quote(weather, timezone.now()).first_fee
    before = state()

    response = buy(api, owner_token, developer.email, {"apiproduct": "weather-api"})

    error = error_of(response, HTTPStatus.BAD_REQUEST)
    assert error["status"] == "FAILED_PRECONDITION"
    # $10 setup plus the prorated first fee, less the $5 held, rounded up to the cent.
    shortfall = -(-(usd("10").nanos + first_fee.nanos - usd("5").nanos) // 10**7) * 10**7
    assert error["message"] == (
        "You have insufficient funds to purchase this plan. "
        f"Add at least ${Decimal(shortfall).scaleb(-9):.2f} to your balance."
    )
    assert state() == before
    assert balance(prepaid_account) == usd("5").nanos


@pytest.mark.django_db
def test_insufficient_funds_with_a_round_shortfall(api, developer, prepaid_account, owner_token):
    plan = published_plan(ApiProductFactory(name="maps"), setup="25")
    fund(prepaid_account, "5.5")
    before = state()

    response = buy(api, owner_token, developer.email, {"apiproduct": plan.product.name})

    error = error_of(response, HTTPStatus.BAD_REQUEST)
    assert (error["status"], error["message"]) == (
        "FAILED_PRECONDITION",
        "You have insufficient funds to purchase this plan. Add at least $19.50 to your balance.",
    )
    assert state() == before


@pytest.mark.django_db
def test_a_postpaid_developers_fees_accrue(api, developer, owner_token, weather):
    response = buy(api, owner_token, developer.email, {"apiproduct": "weather-api"})

    assert response.status_code == HTTPStatus.OK
    assert balance(developer.billing_account) < -usd("10").nanos


@pytest.mark.django_db
@pytest.mark.parametrize("start", ["now", "future"])
def test_a_second_open_subscription_already_exists(
    api, developer, prepaid_account, owner_token, weather, start
):
    fund(prepaid_account, "100")
    body: dict[str, Any] = {"apiproduct": "weather-api"}
    if start == "future":
        body["startTime"] = ms(timezone.now() + timedelta(days=2))
    assert buy(api, owner_token, developer.email, body).status_code == HTTPStatus.OK
    before = state()

    again = buy(api, owner_token, developer.email, {"apiproduct": "weather-api"})

    error = error_of(again, HTTPStatus.CONFLICT)
    assert error["status"] == "ALREADY_EXISTS"
    assert "already purchased Weather API" in error["message"]
    assert state() == before


@pytest.mark.django_db
def test_the_same_idempotency_key_buys_once_and_answers_the_same(
    api, developer, prepaid_account, owner_token, weather
):
    fund(prepaid_account, "100")
    body = {"apiproduct": "weather-api"}
    first = buy(api, owner_token, developer.email, body, key="order-1")
    after_first = state()

    again = buy(api, owner_token, developer.email, body, key="order-1")

    assert (first.status_code, again.status_code) == (HTTPStatus.OK, HTTPStatus.OK)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert state() == after_first
    assert len(fees(prepaid_account)) == 2


@pytest.mark.django_db
def test_an_idempotency_key_used_for_another_product_conflicts(
    api, developer, prepaid_account, owner_token, weather
):
    fund(prepaid_account, "100")
    other = published_plan(ApiProductFactory(name="maps"))
    first = buy(api, owner_token, developer.email, {"apiproduct": "weather-api"}, key="k")
    assert first.status_code == HTTPStatus.OK
    before = state()

    response = buy(api, owner_token, developer.email, {"apiproduct": other.product.name}, key="k")

    assert "another purchase" in error_of(response, HTTPStatus.CONFLICT)["message"]
    assert state() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "key, message",
    [("", "Idempotency-Key is empty"), ("k" * 256, "at most 255 printable characters")],
    ids=["empty", "too long"],
)
def test_a_bad_idempotency_key_is_refused(api, developer, owner_token, weather, key, message):
    before = state()

    response = buy(api, owner_token, developer.email, {"apiproduct": "weather-api"}, key=key)

    assert message in error_of(response, HTTPStatus.BAD_REQUEST)["message"]
    assert state() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "product",
    ["nothing-here", "drafts-only", "ended", "a\x00b"],
)
def test_an_unknown_or_unpublished_product_is_not_found(
    api, developer, owner_token, weather, product
):
    drafts = ApiProductFactory(name="drafts-only")
    rate_plan_create(product=drafts, spec=PlanSpec(display_name="Soon", currency="USD"), actor=None)
    ended = ApiProductFactory(name="ended")
    published_plan(
        ended,
        start=timezone.now() - timedelta(days=30),
        end=timezone.now() - timedelta(days=1),
    )
    before = state()

    response = buy(api, owner_token, developer.email, {"apiproduct": product})

    assert error_of(response, HTTPStatus.NOT_FOUND)["status"] == "NOT_FOUND"
    assert state() == before


BAD_BODIES: dict[str, tuple[Any, str]] = {
    "no product": ({}, "apiproduct: Field required"),
    "product not a string": ({"apiproduct": 5}, "apiproduct: Input should be a valid string"),
    "start not a time": (
        {"apiproduct": "weather-api", "startTime": "tomorrow"},
        "startTime must be a whole number",
    ),
    "start a fraction": ({"apiproduct": "weather-api", "startTime": 1.5}, "startTime must be"),
    "start in the past": (
        {"apiproduct": "weather-api", "startTime": "1000"},
        "startTime is in the past",
    ),
    "unknown field": ({"apiproduct": "weather-api", "ratePlan": "x"}, "ratePlan: Extra inputs"),
    "an array": ([{"apiproduct": "weather-api"}], "must be a JSON object, not an array"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", BAD_BODIES)
def test_a_bad_purchase_is_refused_naming_what_is_wrong(
    api, developer, prepaid_account, owner_token, weather, case
):
    fund(prepaid_account, "100")
    body, message = BAD_BODIES[case]
    before = state()

    response = buy(api, owner_token, developer.email, body)

    assert message in error_of(response, HTTPStatus.BAD_REQUEST)["message"]
    assert state() == before


# ---- reading and expiring ----


def _bought(developer: User, plan: RatePlan) -> Subscription:
    return subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    ).subscription


@pytest.mark.django_db
def test_subscriptions_are_listed_newest_first(api, developer, owner_token, weather):
    maps = published_plan(ApiProductFactory(name="maps"))
    first = _bought(developer, weather)
    later = subscription_purchase(
        account=developer.billing_account,
        product=maps.product,
        actor=Actor.system(),
        start_time=timezone.now() + timedelta(days=1),
    ).subscription
    other = DeveloperFactory()
    _bought(other, weather)  # not this developer's

    listed = api.call("GET", developer_path(developer.email, "subscriptions"), token=owner_token)

    names = [s["name"] for s in listed.json()["developerSubscriptions"]]
    assert names == [str(later.public_id), str(first.public_id)]


@pytest.mark.django_db
def test_expiring_ends_it_now_and_buying_again_works(
    api, developer, prepaid_account, owner_token, weather
):
    fund(prepaid_account, "100")
    bought = buy(api, owner_token, developer.email, {"apiproduct": "weather-api"}).json()
    paid = balance(prepaid_account)
    path = developer_path(developer.email, f"subscriptions/{bought['name']}:expire")

    expired = api.call("POST", path, token=owner_token)

    assert expired.status_code == HTTPStatus.OK, expired.content
    answer = expired.json()
    subscription = Subscription.objects.get()
    assert answer["name"] == bought["name"]
    assert from_ms(answer["endTime"]) == subscription.end_time.replace(
        microsecond=subscription.end_time.microsecond // 1000 * 1000
    )
    assert abs(subscription.end_time - timezone.now()) < timedelta(seconds=5)
    assert answer["lastModifiedAt"] == ms(subscription.updated_at)
    assert subscription.status(timezone.now()) == "Ended"
    assert balance(prepaid_account) == paid  # what was paid is not refunded
    # Expiring again changes nothing; an empty object is an empty body too.
    again = api.call("POST", path, {}, token=owner_token)
    assert again.status_code == HTTPStatus.OK and again.json() == answer

    rebought = buy(api, owner_token, developer.email, {"apiproduct": "weather-api"})
    assert rebought.status_code == HTTPStatus.OK
    assert rebought.json()["name"] != bought["name"]
    assert len(fees(prepaid_account)) == 4


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{"reason": "x"}, [], "not json"], ids=["field", "array", "text"])
def test_expire_takes_an_empty_body(api, developer, owner_token, weather, body):
    subscription = _bought(developer, weather)
    path = developer_path(developer.email, f"subscriptions/{subscription.public_id}:expire")
    before = state()

    if body == "not json":
        response = api.call("POST", path, raw=body, token=owner_token)
    else:
        response = api.call("POST", path, body, token=owner_token)

    assert "empty body" in error_of(response, HTTPStatus.BAD_REQUEST)["message"]
    assert state() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "subscription_id",
    ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "other developer's"],
)
@pytest.mark.parametrize("method, suffix", [("GET", ""), ("POST", ":expire")])
def test_an_unknown_subscription_is_not_found(
    api, developer, owner_token, weather, subscription_id, method, suffix
):
    if subscription_id == "other developer's":
        subscription_id = str(_bought(DeveloperFactory(), weather).public_id)
    before = state()

    response = api.call(
        method,
        developer_path(developer.email, f"subscriptions/{subscription_id}{suffix}"),
        token=owner_token,
    )

    assert error_of(response, HTTPStatus.NOT_FOUND)["status"] == "NOT_FOUND"
    assert state() == before


@pytest.mark.django_db
def test_a_get_of_expire_is_not_the_subscription(api, developer, owner_token, weather):
    subscription = _bought(developer, weather)

    response = api.call(
        "GET",
        developer_path(developer.email, f"subscriptions/{subscription.public_id}:expire"),
        token=owner_token,
    )

    assert response.status_code in (HTTPStatus.NOT_FOUND, HTTPStatus.METHOD_NOT_ALLOWED)
    assert Subscription.objects.get().end_time is None


# ---- who may do what ----

ROLES = {
    "the developer themself": "developer",
    "another developer": "other_developer",
    "admin without permission": "admin_without_permission",
    "portal admin": "portal_admin",
}
NEEDED = {
    "buy": "purchase_any_rate_plan",
    "list": "view_any_purchased_plan",
    "get": "view_any_purchased_plan",
    "expire": "update_any_purchased_plan",
}


def _operation(operation: str, email: str, subscription: Subscription) -> tuple[str, str, Any]:
    one = f"subscriptions/{subscription.public_id}"
    return {
        "buy": ("POST", developer_path(email, "subscriptions"), {"apiproduct": "maps"}),
        "list": ("GET", developer_path(email, "subscriptions"), None),
        "get": ("GET", developer_path(email, one), None),
        "expire": ("POST", developer_path(email, f"{one}:expire"), None),
    }[operation]


@pytest.fixture
def bought(developer: User, weather: RatePlan) -> Subscription:
    published_plan(ApiProductFactory(name="maps"))
    return _bought(developer, weather)


@pytest.mark.django_db
@pytest.mark.parametrize("operation", NEEDED)
@pytest.mark.parametrize("role", [*ROLES, "anonymous"])
def test_permission_matrix(api, request, developer, bought, role, operation):
    method, path, body = _operation(operation, developer.email, bought)
    token = None if role == "anonymous" else api.token_for(request.getfixturevalue(ROLES[role]))
    before = state()

    response = api.call(method, path, body, token=token)

    if role == "anonymous":
        assert error_of(response, HTTPStatus.UNAUTHORIZED)["status"] == "UNAUTHENTICATED"
        assert state() == before
    elif role in ("the developer themself", "portal admin"):
        assert response.status_code == HTTPStatus.OK, response.content
        if operation == "buy":
            assert response.json()["apiproduct"] == "maps"
            assert Subscription.objects.filter(
                billing_account=developer.billing_account, product__name="maps"
            ).exists()
        elif operation == "list":
            assert [s["name"] for s in response.json()["developerSubscriptions"]] == [
                str(bought.public_id)
            ]
        else:
            assert response.json()["name"] == str(bought.public_id)
        if operation == "expire":
            bought.refresh_from_db()
            assert bought.end_time is not None
    else:
        error = error_of(response, HTTPStatus.FORBIDDEN)
        assert error["status"] == "PERMISSION_DENIED"
        assert f"billing.{NEEDED[operation]}" in error["message"]
        assert state() == before


@pytest.mark.django_db
@pytest.mark.parametrize("operation", NEEDED)
def test_each_operation_needs_exactly_its_permission(api, developer, bought, operation):
    method, path, body = _operation(operation, developer.email, bought)
    codename = NEEDED[operation]
    holder = AdminFactory()
    holder.user_permissions.add(Permission.objects.get(codename=codename))
    others = AdminFactory()
    others.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="billing").exclude(codename=codename)
    )

    refused = api.call(method, path, body, token=api.token_for(others))
    allowed = api.call(method, path, body, token=api.token_for(holder))

    assert codename in error_of(refused, HTTPStatus.FORBIDDEN)["message"]
    assert allowed.status_code == HTTPStatus.OK, allowed.content


@pytest.mark.django_db
def test_an_admin_buys_for_a_developer_and_the_ledger_says_who(
    api, developer, prepaid_account, portal_admin, admin_token, weather
):
    fund(prepaid_account, "100")

    response = buy(api, admin_token, developer.email, {"apiproduct": "weather-api"})

    assert response.status_code == HTTPStatus.OK
    assert Subscription.objects.get().billing_account == prepaid_account
    entry = LedgerEntry.objects.filter(kind="FEE").first()
    assert entry is not None and entry.actor_user == portal_admin


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["other_developer", "admin_without_permission"])
def test_permission_is_checked_before_the_developer_is_looked_up(api, request, weather, role):
    token = api.token_for(request.getfixturevalue(role))

    response = buy(api, token, "nobody@example.com", {"apiproduct": "weather-api"})

    error_of(response, HTTPStatus.FORBIDDEN)


@pytest.mark.django_db
def test_an_unknown_developer_or_organization_is_not_found(api, admin_token, weather):
    unknown = buy(api, admin_token, "nobody@example.com", {"apiproduct": "weather-api"})
    other_org = api.call(
        "GET",
        developer_path("someone@example.com", "subscriptions", org="other-org"),
        token=admin_token,
    )

    assert "nobody@example.com" in error_of(unknown, HTTPStatus.NOT_FOUND)["message"]
    assert "other-org" in error_of(other_org, HTTPStatus.NOT_FOUND)["message"]
    assert not Subscription.objects.exists()


# ---- twenty purchases at once, on PostgreSQL ----


def _buy_at_once(developer: User, token: str, keys: list[str | None]) -> list[HttpResponse]:
    """One thread per key, each with its own client and database connection, all released at
    the same instant."""
    barrier = threading.Barrier(len(keys))
    responses: list[HttpResponse] = []

    def purchase(key: str | None) -> None:
        client = Client(raise_request_exception=False)
        try:
            barrier.wait(timeout=30)
            responses.append(
                buy(Api(), token, developer.email, {"apiproduct": "weather-api"}, key=key,
                    client=client)
            )  # fmt: skip
        finally:
            connection.close()

    threads = [threading.Thread(target=purchase, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(responses) == len(keys)
    return responses


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("shared_key", [False, True], ids=["no key", "one shared key"])
def test_twenty_purchases_at_once_make_one_subscription_and_one_charge(
    postgres, developer, prepaid_account, weather, shared_key
):
    fund(prepaid_account, "100")
    token = Api().token_for(developer)
    keys = ["order-1" if shared_key else None] * 20

    responses = _buy_at_once(developer, token, keys)

    subscription = Subscription.objects.get()
    statuses = Counter(r.status_code for r in responses)
    if shared_key:
        # All twenty are told of the one purchase; only the first made it.
        assert statuses == {HTTPStatus.OK: 20}
        assert {r.json()["name"] for r in responses} == {str(subscription.public_id)}
        assert sum(r.get("Idempotent-Replayed") == "true" for r in responses) == 19
    else:
        assert statuses == {HTTPStatus.OK: 1, HTTPStatus.CONFLICT: 19}
        assert {r.json()["error"]["status"] for r in responses if r.status_code == 409} == {
            "ALREADY_EXISTS"
        }
    quote = purchase_quote(weather, subscription.start_time)
    assert [transaction_id for transaction_id, _ in fees(prepaid_account)] == [
        f"purchase:{subscription.public_id}:setup",
        f"fee:{subscription.public_id}:{subscription.start_time:%Y-%m}",
    ]
    assert balance(prepaid_account) == usd("90").nanos - quote.first_fee.nanos


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twenty_purchases_at_once_with_their_own_keys_still_buy_once(
    postgres, developer, prepaid_account, weather
):
    fund(prepaid_account, "100")
    token = Api().token_for(developer)

    responses = _buy_at_once(developer, token, [f"order-{n}" for n in range(20)])

    assert Counter(r.status_code for r in responses) == {HTTPStatus.OK: 1, HTTPStatus.CONFLICT: 19}
    assert Subscription.objects.count() == 1
    assert len(fees(prepaid_account)) == 2


@contextlib.contextmanager
def account_locked_elsewhere(account: BillingAccount) -> Iterator[None]:
    """Another session holds the developer's account row (an admin changing the billing type)."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                BillingAccount.objects.select_for_update().get(pk=account.pk)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_lock_timeout_answers_503_and_the_retry_with_the_key_buys_once(
    postgres, api, developer, prepaid_account, owner_token, weather
):
    fund(prepaid_account, "100")
    with connection.cursor() as cursor:  # the request runs on this session
        cursor.execute("SET lock_timeout = '200ms'")
    body = {"apiproduct": "weather-api"}

    with account_locked_elsewhere(prepaid_account):
        busy = buy(api, owner_token, developer.email, body, key="order-7")

    error = error_of(busy, HTTPStatus.SERVICE_UNAVAILABLE)
    assert "same Idempotency-Key" in error["message"]
    assert not Subscription.objects.exists() and fees(prepaid_account) == []
    retry = buy(api, owner_token, developer.email, body, key="order-7")
    again = buy(api, owner_token, developer.email, body, key="order-7")
    assert (retry.status_code, again.status_code) == (HTTPStatus.OK, HTTPStatus.OK)
    assert again["Idempotent-Replayed"] == "true" and again.json() == retry.json()
    assert Subscription.objects.count() == 1 and len(fees(prepaid_account)) == 2
    with connection.cursor() as cursor:
        cursor.execute("RESET lock_timeout")
