"""The limits check: every reason, from the database as of now, and never a change of money."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from accounts.services import (
    api_token_authenticate,
    api_token_create,
    api_token_revoke,
    token_user_has_perm,
)
from billing.api.auth import REPORT_USAGE
from billing.developer_apps.keys import key_hash, key_new, key_prefix
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.limits.selectors import Reason, limits_check
from billing.models import (
    AppKey,
    DeveloperApp,
    LedgerEntry,
    OrganizationSettings,
    Subscription,
    UsageCounter,
)
from billing.subscriptions.services import subscription_expire, subscription_purchase
from billing.usage.windows import quota_period, quota_window
from tests.conftest import usd
from tests.factories import AdminFactory, ApiProductFactory, UserFactory, published_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def product():
    return ApiProductFactory(name="weather-api", quota=3, quota_interval=1, quota_time_unit="day")


def app_with_key(account, *products) -> tuple[DeveloperApp, AppKey, str]:
    app = DeveloperApp.objects.create(billing_account=account, name="My app")
    app.api_products.set(products)
    raw = key_new()
    key = AppKey.objects.create(app=app, prefix=key_prefix(raw), key_hash=key_hash(raw))
    return app, key, raw


def bought(account, product):
    return subscription_purchase(account=account, product=product, actor=Actor.system())


def test_ok_with_the_balance_and_the_quota(prepaid_account, product):
    published_plan(product, setup="1")
    wallet_credit(
        account=prepaid_account, money=usd("10"), transaction_id="t", actor=Actor.system()
    )
    sub = bought(prepaid_account, product).subscription
    _, _, raw = app_with_key(prepaid_account, product)
    entries = LedgerEntry.objects.count()

    answer = limits_check(consumer_key=raw, product_name="weather-api")

    assert answer.allowed and answer.reason == Reason.OK
    assert answer.developer == prepaid_account.user.email
    assert answer.subscription == str(sub.public_id)
    assert answer.balance == usd("9")
    assert answer.quota is not None and (answer.quota.limit, answer.quota.used) == (3, 0)
    assert answer.quota.reset_time == quota_window(product, timezone.now())[1]
    assert LedgerEntry.objects.count() == entries  # a read


def test_an_unknown_key(product):
    assert limits_check(consumer_key="nope", product_name="weather-api").reason == "INVALID_KEY"


def test_a_revoked_key_is_refused_at_once(developer, product):
    published_plan(product)
    bought(developer.billing_account, product)
    _, key, raw = app_with_key(developer.billing_account, product)
    assert limits_check(consumer_key=raw, product_name="weather-api").allowed
    AppKey.objects.filter(pk=key.pk).update(status="revoked", revoked_at=timezone.now())
    assert limits_check(consumer_key=raw, product_name="weather-api").reason == "KEY_REVOKED"


def test_a_product_not_in_the_app(developer, product):
    published_plan(product)
    other = ApiProductFactory()
    _, _, raw = app_with_key(developer.billing_account, other)
    answer = limits_check(consumer_key=raw, product_name="weather-api")
    assert answer.reason == "PRODUCT_NOT_IN_APP" and not answer.allowed


def test_no_subscription(developer, product):
    published_plan(product)
    _, _, raw = app_with_key(developer.billing_account, product)
    assert limits_check(consumer_key=raw, product_name="weather-api").reason == "NO_SUBSCRIPTION"


def test_not_started_then_ended(developer, product):
    published_plan(product)
    account = developer.billing_account
    future = subscription_purchase(
        account=account,
        product=product,
        actor=Actor.system(),
        start_time=timezone.now() + timedelta(days=2),
    ).subscription
    _, _, raw = app_with_key(account, product)
    assert limits_check(consumer_key=raw, product_name="weather-api").reason == (
        "SUBSCRIPTION_NOT_STARTED"
    )
    subscription_expire(subscription=future, actor=Actor.system())
    assert limits_check(consumer_key=raw, product_name="weather-api").reason == (
        "SUBSCRIPTION_ENDED"
    )
    bought(account, product)  # buying again: the open one counts, not the ended one
    assert limits_check(consumer_key=raw, product_name="weather-api").allowed


def test_unpaid(developer, product):
    published_plan(product)
    sub = bought(developer.billing_account, product).subscription
    Subscription.objects.filter(pk=sub.pk).update(unpaid_since=timezone.now())
    _, _, raw = app_with_key(developer.billing_account, product)
    assert limits_check(consumer_key=raw, product_name="weather-api").reason == "UNPAID"


def test_quota_exceeded_until_the_window_resets(developer, product):
    published_plan(product)
    sub = bought(developer.billing_account, product).subscription
    _, _, raw = app_with_key(developer.billing_account, product)
    now = timezone.now()
    start, end = quota_window(product, now)
    UsageCounter.objects.create(subscription=sub, period=quota_period(start), calls=3)
    answer = limits_check(consumer_key=raw, product_name="weather-api", now=now)
    assert answer.reason == "QUOTA_EXCEEDED" and answer.quota.used == 3
    assert answer.quota.reset_time == end
    assert limits_check(consumer_key=raw, product_name="weather-api", now=end).allowed


def test_the_quota_counts_this_window_after_the_product_changed_its_window(developer, product):
    """The one read brings the latest counter; when the product's window was changed since
    (minutes to a day here), a later window's counter must not hide this window's."""
    published_plan(product)
    sub = bought(developer.billing_account, product).subscription
    _, _, raw = app_with_key(developer.billing_account, product)
    now = timezone.now()
    day_start, _ = quota_window(product, now)
    UsageCounter.objects.create(subscription=sub, period=quota_period(day_start), calls=3)
    minute = timedelta(minutes=1)  # as if it had counted per minute since
    UsageCounter.objects.create(subscription=sub, period=quota_period(day_start + minute), calls=1)
    answer = limits_check(consumer_key=raw, product_name="weather-api", now=now)
    assert answer.reason == "QUOTA_EXCEEDED" and answer.quota.used == 3
    UsageCounter.objects.filter(period=quota_period(day_start)).delete()
    answer = limits_check(consumer_key=raw, product_name="weather-api", now=now)
    assert answer.allowed and answer.quota.used == 0


def test_a_prepaid_wallet_at_its_floor(prepaid_account, product):
    published_plan(product, setup="10")
    wallet_credit(
        account=prepaid_account, money=usd("10"), transaction_id="t", actor=Actor.system()
    )
    bought(prepaid_account, product)  # the balance is now 0: the floor without grace
    _, _, raw = app_with_key(prepaid_account, product)
    answer = limits_check(consumer_key=raw, product_name="weather-api")
    assert answer.reason == "INSUFFICIENT_BALANCE" and answer.balance == usd("0")


def test_a_postpaid_developer_is_not_limited_by_the_balance(developer, product):
    published_plan(product, setup="10")
    bought(developer.billing_account, product)  # balance -10, postpaid
    _, _, raw = app_with_key(developer.billing_account, product)
    assert limits_check(consumer_key=raw, product_name="weather-api").allowed


# ---- The API ----


def gateway_token() -> str:
    gateway = UserFactory(email="gateway@example.com")
    gateway.user_permissions.add(Permission.objects.get(codename="report_usage"))
    return api_token_create(user=gateway, name="gateway")[1]


def post(client, token: str | None, body: dict):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(
        "/v1/organizations/demo-org/limitsCheck",
        data=body,
        content_type="application/json",
        headers=headers,
    )


def test_the_api_answers_a_gateway(client, developer, product):
    published_plan(product)
    bought(developer.billing_account, product)
    _, _, raw = app_with_key(developer.billing_account, product)
    answer = post(client, gateway_token(), {"consumerKey": raw, "apiproduct": "weather-api"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["allowed"] is True and body["reason"] == "OK"
    assert body["balance"] == {"currencyCode": "USD", "units": "0"}
    assert body["quota"]["limit"] == "3" and body["quota"]["used"] == "0"
    assert body["quota"]["resetTime"].isdigit()
    unknown = post(client, None, {"consumerKey": "x", "apiproduct": "weather-api"})
    assert unknown.status_code == 401


def test_only_holders_of_report_usage_may_ask(client, developer, product):
    published_plan(product)
    _, _, raw = app_with_key(developer.billing_account, product)
    body = {"consumerKey": raw, "apiproduct": "weather-api"}
    for user in (developer, AdminFactory(), AdminFactory(portal_admin=True)):
        token = api_token_create(user=user, name="t")[1]
        assert post(client, token, body).status_code == 403, user
    assert post(client, gateway_token(), body).status_code == 200


def test_the_token_and_its_right_are_read_together_as_django_would(client, developer, product):
    """The gateway's one read of the token decides the right as ModelBackend does: directly,
    through a group, or as a superuser; a revoked token or an inactive user is no token."""
    published_plan(product)
    _, _, raw = app_with_key(developer.billing_account, product)
    body = {"consumerKey": raw, "apiproduct": "weather-api"}
    report_usage = Permission.objects.get(codename="report_usage")
    through_group = UserFactory()
    group = Group.objects.create(name="Gateways")
    group.permissions.add(report_usage)
    through_group.groups.add(group)
    superuser = UserFactory(is_superuser=True)
    other_right = UserFactory()
    other_right.user_permissions.add(Permission.objects.get(codename="view_usageevent"))
    for user, status in ((through_group, 200), (superuser, 200), (other_right, 403)):
        token = api_token_create(user=user, name="t")[1]
        assert post(client, token, body).status_code == status, user
        assert token_user_has_perm(api_token_authenticate(token), REPORT_USAGE) == (status == 200)
    revoked, raw_revoked = api_token_create(user=through_group, name="r")
    api_token_revoke(token=revoked)
    assert post(client, raw_revoked, body).status_code == 401
    inactive = api_token_create(user=superuser, name="i")[1]
    superuser.is_active = False
    superuser.save()
    assert post(client, inactive, body).status_code == 401
    group.permissions.remove(report_usage)  # taken away: refused at once
    assert post(client, api_token_create(user=through_group, name="g")[1], body).status_code == 403


def test_bad_input_is_a_400(client):
    token = gateway_token()
    assert post(client, token, {"consumerKey": "a\x00b", "apiproduct": "x"}).status_code == 400
    assert (
        post(client, token, {"consumerKey": "a", "apiproduct": "x", "more": 1}).status_code == 400
    )


def test_the_organisations_grace_moves_the_floor(prepaid_account, product):
    published_plan(product, setup="10")
    wallet_credit(
        account=prepaid_account, money=usd("10"), transaction_id="t", actor=Actor.system()
    )
    bought(prepaid_account, product)  # the balance is now 0
    OrganizationSettings.objects.update(prepaid_grace_nanos=usd("5").nanos)
    _, _, raw = app_with_key(prepaid_account, product)
    assert limits_check(consumer_key=raw, product_name="weather-api").allowed  # 0 > -5


def test_one_read(prepaid_account, product, django_assert_num_queries):
    published_plan(product)
    sub = bought(prepaid_account, product).subscription
    UsageCounter.objects.create(
        subscription=sub, period=quota_period(quota_window(product, timezone.now())[0]), calls=1
    )
    _, _, raw = app_with_key(prepaid_account, product)
    with django_assert_num_queries(1):
        assert limits_check(consumer_key=raw, product_name="weather-api").reason == (
            "INSUFFICIENT_BALANCE"
        )


def test_the_gateways_call_is_one_read_with_its_token(
    client, prepaid_account, product, django_assert_num_queries
):
    """The token, its user's right and the answer come from one statement (once the token's
    last use is noted, which is a write at most once a minute)."""
    published_plan(product)
    bought(prepaid_account, product)
    _, _, raw = app_with_key(prepaid_account, product)
    token = gateway_token()
    body = {"consumerKey": raw, "apiproduct": "weather-api"}
    assert post(client, token, body).json()["reason"] == "INSUFFICIENT_BALANCE"
    with django_assert_num_queries(1):
        answer = post(client, token, body)
    assert answer.status_code == 200 and answer.json()["reason"] == "INSUFFICIENT_BALANCE"
    # A token that is not a live one is refused before anything else is said, on any org.
    assert post(client, token + "x", body).status_code == 401
    response = client.post(
        "/v1/organizations/other-org/limitsCheck",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}x"},
    )
    assert response.status_code == 401
    assert post(client, None, body).status_code == 401
