"""Apps and their keys: a key exists only as a hash (and a prefix) once issued, a revoked or
deleted key is found as such, and an app calls only what its developer bought or what is free."""

from __future__ import annotations

import pytest
from django.apps import apps as django_apps
from django.core import serializers
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.catalog.rates import Band
from billing.developer_apps.keys import key_hash
from billing.developer_apps.selectors import app_get, app_key_find, apps_of, products_allowed
from billing.developer_apps.services import (
    app_create,
    app_delete,
    app_key_add,
    app_key_revoke,
    app_products_set,
)
from billing.exceptions import AlreadyExists, BillingError
from billing.ledger.entries import Actor
from billing.models import AppKey, AuditLogEntry, DeveloperApp, Subscription
from billing.subscriptions.services import subscription_expire, subscription_purchase
from tests.conftest import usd
from tests.factories import ApiProductFactory, published_plan

pytestmark = pytest.mark.django_db


def everything_stored() -> str:
    """Every row of every table, as text."""
    return "".join(
        serializers.serialize("json", model._default_manager.all())
        for model in django_apps.get_models()
    )


@pytest.fixture
def account(developer):
    return developer.billing_account


@pytest.fixture
def bought(account):
    """A paid product the developer bought (no fee today, so no wallet needed: postpaid)."""
    plan = published_plan(
        ApiProductFactory(name="weather-api", display_name="Weather API"), recurring="5"
    )
    subscription_purchase(account=account, product=plan.product, actor=Actor.system())
    return plan.product


@pytest.fixture
def free():
    plan = published_plan(ApiProductFactory(name="free-api", display_name="Free API"))
    return plan.product


@pytest.fixture
def paid():
    """On sale, not bought: a per-call price is a price."""
    plan = published_plan(
        ApiProductFactory(name="maps-api", display_name="Maps API"),
        consumption_pricing_type="FIXED_PER_UNIT",
        bands=[Band(0, 0, usd("0.002").nanos)],
    )
    return plan.product


def test_a_key_is_stored_only_as_its_hash_and_prefix(developer, account, bought):
    app, raw = app_create(
        account=account, name="My app", products=[bought], actor=Actor.for_user(developer)
    )
    second, raw2 = app_key_add(app=app, actor=Actor.for_user(developer))

    stored = everything_stored()
    for key in (raw, raw2):
        assert len(key) >= 22  # at least 128 bits of url-safe base64
        assert key not in stored
        assert key_hash(key) in stored
    assert list(app.keys.values_list("prefix", flat=True)) == [raw[:12], raw2[:12]]
    assert raw != raw2
    assert app_key_find(raw=raw).app == app
    assert app_key_find(raw=raw2) == second


def test_the_gateway_finds_a_key_in_one_read(developer, account, bought):
    _, raw = app_create(account=account, name="My app", products=[bought], actor=Actor.system())
    with CaptureQueriesContext(connection) as queries:
        key = app_key_find(raw=raw)
        assert key.app.billing_account.user == developer
    assert len(queries) == 1
    assert app_key_find(raw=raw + "x") is None
    assert app_key_find(raw="") is None


def test_a_revoked_key_is_not_live_at_once_and_the_other_key_still_is(developer, account, bought):
    app, raw = app_create(account=account, name="My app", products=[bought], actor=Actor.system())
    _, raw2 = app_key_add(app=app, actor=Actor.system())
    before = timezone.now()
    app_key_revoke(key=app_key_find(raw=raw), actor=Actor.for_user(developer))

    revoked = app_key_find(raw=raw)
    assert revoked.status == AppKey.Status.REVOKED and revoked.revoked_at >= before
    assert app_key_find(raw=raw2).status == AppKey.Status.APPROVED
    # Revoking again changes nothing, and audits nothing more.
    app_key_revoke(key=revoked, actor=Actor.for_user(developer))
    assert AuditLogEntry.objects.filter(action="app.key_revoke").count() == 1
    assert app_key_find(raw=raw).revoked_at == revoked.revoked_at


def test_only_products_bought_or_free_may_be_called(developer, account, bought, free, paid):
    assert [p.name for p in products_allowed(account=account)] == ["free-api", "weather-api"]
    with pytest.raises(BillingError, match="purchase Maps API first"):
        app_create(account=account, name="Greedy", products=[bought, paid], actor=Actor.system())
    assert not DeveloperApp.objects.exists() and not AppKey.objects.exists()

    app, _ = app_create(account=account, name="Fine", products=[bought, free], actor=Actor.system())
    assert sorted(app.api_products.values_list("name", flat=True)) == ["free-api", "weather-api"]
    with pytest.raises(BillingError, match="Maps API"):
        app_products_set(app=app, products=[paid], actor=Actor.system())
    app_products_set(app=app, products=[free], actor=Actor.system())
    assert list(app.api_products.values_list("name", flat=True)) == ["free-api"]


def test_a_cancelled_purchase_no_longer_allows_the_product(developer, account, bought):
    subscription = Subscription.objects.get(billing_account=account)
    subscription_expire(subscription=subscription, actor=Actor.system())
    assert products_allowed(account=account) == []
    with pytest.raises(BillingError):
        app_create(account=account, name="Late", products=[bought], actor=Actor.system())


def test_app_names_are_unique_per_developer_and_checked(developer, other_developer, account, free):
    app_create(account=account, name="My app", products=[free], actor=Actor.system())
    with pytest.raises(AlreadyExists, match="already have an app named 'My app'"):
        app_create(account=account, name="My app", products=[], actor=Actor.system())
    app_create(
        account=other_developer.billing_account, name="My app", products=[], actor=Actor.system()
    )
    for bad in ("", " lead", "trail ", "a/b", "x" * 101, "tab\there"):
        with pytest.raises(BillingError, match="An app name is 1 to 100"):
            app_create(account=account, name=bad, products=[], actor=Actor.system())
    assert DeveloperApp.objects.count() == 2


def test_deleting_an_app_deletes_its_keys_and_is_audited(developer, account, free):
    app, raw = app_create(
        account=account, name="Gone", products=[free], actor=Actor.for_user(developer)
    )
    _, raw2 = app_key_add(app=app, actor=Actor.for_user(developer))
    app_delete(app=app, actor=Actor.for_user(developer))
    assert app_key_find(raw=raw) is None and app_key_find(raw=raw2) is None
    assert app_get(account=account, name="Gone") is None
    entry = AuditLogEntry.objects.get(action="app.delete")
    assert entry.actor == developer and entry.target_user == developer
    assert entry.data["key_prefixes"] == [raw[:12], raw2[:12]]
    apps_audit = AuditLogEntry.objects.filter(action__startswith="app.").order_by("id")
    actions = list(apps_audit.values_list("action", flat=True))
    assert actions == ["app.create", "app.key_add", "app.delete"]


def test_apps_of_reads_keys_and_products_in_constant_queries(account, free, bought):
    for n in range(5):
        app, _ = app_create(
            account=account, name=f"app {n}", products=[free, bought], actor=Actor.system()
        )
        app_key_add(app=app, actor=Actor.system())
    with CaptureQueriesContext(connection) as queries:
        apps = list(apps_of(account=account))
        shaped = [(a.name, len(a.keys.all()), [p.name for p in a.api_products.all()]) for a in apps]
    assert len(queries) == 3
    assert shaped[0] == ("app 0", 2, ["free-api", "weather-api"])
    assert len(shaped) == 5
