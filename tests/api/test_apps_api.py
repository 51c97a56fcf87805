"""Developer apps under /v1/organizations/{org}/developers/{email}/apps: the Apigee X
DeveloperApp shapes, the key's value in the answer that made it and never again, revoking and
deleting, and who may do it (the developer themself, or "Administer monetization")."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission

from accounts.models import User
from billing.developer_apps.keys import key_hash
from billing.developer_apps.selectors import app_key_find
from billing.ledger.entries import Actor
from billing.models import AppKey, DeveloperApp
from billing.subscriptions.services import subscription_purchase
from tests.api.conftest import Api, developer_path, error_of
from tests.factories import AdminFactory, ApiProductFactory, published_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def weather(developer: User):
    """Bought by `developer` (a recurring fee, billed postpaid)."""
    plan = published_plan(ApiProductFactory(name="weather-api"), recurring="5")
    subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    )
    return plan.product


@pytest.fixture
def maps():
    """On sale with a fee, bought by nobody."""
    return published_plan(ApiProductFactory(name="maps-api"), setup="1").product


@pytest.fixture
def owner_token(api: Api, developer: User) -> str:
    return api.token_for(developer)


def apps_path(email: str, suffix: str = "") -> str:
    return developer_path(email, "apps" + suffix)


def create(api: Api, token: str, email: str, name: str = "My app", products=("weather-api",)):
    return api.call(
        "POST", apps_path(email), {"name": name, "apiProducts": list(products)}, token=token
    )


def test_create_answers_the_app_with_its_key_once(api, developer, owner_token, weather):
    response = create(api, owner_token, developer.email)
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    app = DeveloperApp.objects.get()
    assert set(body) == {
        "name",
        "appId",
        "apiProducts",
        "status",
        "credentials",
        "createdAt",
        "lastModifiedAt",
    }
    assert body["name"] == "My app" and body["appId"] == str(app.public_id)
    assert body["apiProducts"] == ["weather-api"] and body["status"] == "approved"
    [credential] = body["credentials"]
    raw = credential["consumerKey"]
    assert set(credential) == {"consumerKey", "consumerKeyPrefix", "status", "issuedAt"}
    assert credential["consumerKeyPrefix"] == raw[:12] and credential["status"] == "approved"
    assert AppKey.objects.get().key_hash == key_hash(raw)
    assert int(credential["issuedAt"]) == int(app.keys.get().issued_at.timestamp() * 1000)

    read = api.call("GET", apps_path(developer.email, "/My app"), token=owner_token).json()
    listed = api.call("GET", apps_path(developer.email), token=owner_token).json()
    assert listed == {"app": [read]}
    assert read["credentials"] == [
        {"consumerKeyPrefix": raw[:12], "status": "approved", "issuedAt": credential["issuedAt"]}
    ]
    assert raw not in str(read) and raw not in str(listed)


def test_a_second_key_is_shown_once_and_revoking_one_keeps_the_other(
    api, developer, owner_token, weather
):
    first = create(api, owner_token, developer.email).json()["credentials"][0]["consumerKey"]
    response = api.call("POST", apps_path(developer.email, "/My app/keys"), token=owner_token)
    assert response.status_code == HTTPStatus.OK, response.content
    credentials = response.json()["credentials"]
    assert [("consumerKey" in c) for c in credentials] == [False, True]
    second = credentials[1]["consumerKey"]

    revoked = api.call(
        "DELETE", apps_path(developer.email, f"/My app/keys/{first[:12]}"), token=owner_token
    )
    assert revoked.status_code == HTTPStatus.OK, revoked.content
    assert [(c["consumerKeyPrefix"], c["status"]) for c in revoked.json()["credentials"]] == [
        (first[:12], "revoked"),
        (second[:12], "approved"),
    ]
    assert app_key_find(raw=first).status == "revoked"
    assert app_key_find(raw=second).status == "approved"
    unknown = api.call(
        "DELETE", apps_path(developer.email, "/My app/keys/nosuchprefix"), token=owner_token
    )
    assert error_of(unknown, HTTPStatus.NOT_FOUND)["message"].startswith("Key 'nosuchprefix'")


def test_delete_answers_the_app_and_its_keys_stop(api, developer, owner_token, weather):
    raw = create(api, owner_token, developer.email).json()["credentials"][0]["consumerKey"]
    response = api.call("DELETE", apps_path(developer.email, "/My app"), token=owner_token)
    assert response.status_code == HTTPStatus.OK and response.json()["name"] == "My app"
    assert app_key_find(raw=raw) is None
    gone = api.call("GET", apps_path(developer.email, "/My app"), token=owner_token)
    error_of(gone, HTTPStatus.NOT_FOUND)


def test_only_bought_or_free_products_and_unique_names(api, developer, owner_token, weather, maps):
    refused = create(api, owner_token, developer.email, products=["weather-api", "maps-api"])
    assert "purchased, or free ones" in error_of(refused, HTTPStatus.BAD_REQUEST)["message"]
    unknown = create(api, owner_token, developer.email, products=["no-such-api"])
    assert (
        error_of(unknown, HTTPStatus.NOT_FOUND)["message"] == "API product 'no-such-api' not found."
    )
    bad_name = create(api, owner_token, developer.email, name="a/b")
    error_of(bad_name, HTTPStatus.BAD_REQUEST)
    assert not DeveloperApp.objects.exists()
    assert create(api, owner_token, developer.email).status_code == HTTPStatus.OK
    again = create(api, owner_token, developer.email, products=[])
    assert error_of(again, HTTPStatus.CONFLICT)["status"] == "ALREADY_EXISTS"
    assert DeveloperApp.objects.count() == 1


@pytest.mark.parametrize(
    "who, status",
    [
        ("owner", HTTPStatus.OK),
        ("other_developer", HTTPStatus.FORBIDDEN),
        ("admin_without_permission", HTTPStatus.FORBIDDEN),
        ("admin_with_permission", HTTPStatus.OK),
        ("anonymous", HTTPStatus.UNAUTHORIZED),
    ],
)
def test_who_may_manage_a_developers_apps(api, developer, other_developer, weather, who, status):
    users = {
        "owner": developer,
        "other_developer": other_developer,
        "admin_without_permission": AdminFactory(),
        "admin_with_permission": AdminFactory(),
    }
    users["admin_with_permission"].user_permissions.add(
        Permission.objects.get(codename="administer_monetization")
    )
    token = api.token_for(users[who]) if who in users else None
    email = developer.email
    owner = api.token_for(developer)
    raw = create(api, owner, email, name="Made").json()["credentials"][0]["consumerKey"]
    calls = [
        ("POST", apps_path(email), {"name": "Another", "apiProducts": ["weather-api"]}),
        ("GET", apps_path(email), None),
        ("GET", apps_path(email, "/Made"), None),
        ("POST", apps_path(email, "/Made/keys"), None),
        ("DELETE", apps_path(email, f"/Made/keys/{raw[:12]}"), None),
        ("DELETE", apps_path(email, "/Made"), None),
    ]
    for method, path, body in calls:
        response = api.call(method, path, body, token=token)
        if status == HTTPStatus.OK:
            assert response.status_code == status, (method, path, response.content)
        else:
            error_of(response, status)
    expected = ["Another"] if status == HTTPStatus.OK else ["Made"]
    assert list(DeveloperApp.objects.values_list("name", flat=True)) == expected
    if status == HTTPStatus.OK:
        assert app_key_find(raw=raw) is None  # deleted with its app
    else:
        assert app_key_find(raw=raw).status == "approved"
        assert AppKey.objects.count() == 1


def test_an_admin_acts_on_a_developer_and_staff_have_no_apps(api, developer, portal_admin, weather):
    token = api.token_for(portal_admin)
    assert create(api, token, developer.email).status_code == HTTPStatus.OK
    assert DeveloperApp.objects.get().billing_account.user == developer
    staff = create(api, token, portal_admin.email)
    error_of(staff, HTTPStatus.NOT_FOUND)
