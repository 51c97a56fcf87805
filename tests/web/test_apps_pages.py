"""Apps: the developer's page (create an app with its products, the key shown once with a copy
button, add a key, revoke a key and delete an app behind confirmations), the admin's view under
People, what each role may reach, and the same few queries for 1 or 50 apps."""

from __future__ import annotations

import html
import re
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.developer_apps.selectors import app_key_find
from billing.developer_apps.services import app_create, app_key_add
from billing.ledger.entries import Actor
from billing.models import AppKey, DeveloperApp
from billing.subscriptions.services import subscription_purchase
from tests.browser.signing_in import sign_in
from tests.factories import AdminFactory, ApiProductFactory, DeveloperFactory, published_plan

pytestmark = pytest.mark.django_db


def text(response) -> str:
    page = re.sub(r"</?(strong|span|a|em|b|code)\b[^>]*>", "", response.content.decode())
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def shown_key(response) -> str:
    found = re.search(r'id="new-key-value"[^>]*value="([^"]+)"', response.content.decode())
    return html.unescape(found.group(1)) if found else ""


@pytest.fixture
def weather(developer):
    """Bought by `developer` (postpaid: the fee is billed)."""
    plan = published_plan(
        ApiProductFactory(name="weather-api", display_name="Weather API"), recurring="5"
    )
    subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    )
    return plan.product


@pytest.fixture
def maps():
    return published_plan(ApiProductFactory(name="maps-api", display_name="Maps API"), setup="1")


@pytest.fixture
def app_and_key(developer, weather):
    return app_create(
        account=developer.billing_account, name="My app", products=[weather], actor=Actor.system()
    )


@pytest.fixture
def app_admin(db):
    admin = AdminFactory()
    admin.user_permissions.add(Permission.objects.get(codename="administer_monetization"))
    return admin


def test_creating_an_app_shows_its_key_once(client, developer, weather, maps):
    client.force_login(developer)
    page = client.get(reverse("my_apps"))
    assert page.status_code == HTTPStatus.OK
    assert "You have no apps yet." in text(page)
    choices = re.findall(r'name="products" value="([^"]+)"', page.content.decode())
    assert choices == ["weather-api"]  # Maps API is on sale but not bought, and not free

    response = client.post(reverse("my_apps"), {"name": "My app", "products": ["weather-api"]})
    assert response.status_code == HTTPStatus.OK
    raw = shown_key(response)
    key = app_key_find(raw=raw)
    assert key is not None and key.app.name == "My app"
    assert "Copy it now: this key is not shown again." in text(response)
    assert 'data-copy-target="new-key-value"' in response.content.decode()
    assert "js/copy-key.js" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert (
        f"My app Calls: Weather API Key Status Issued (UTC) Revoke {raw[:12]}… ✓ Approved"
        in text(response)
    )

    again = client.get(reverse("my_apps"))
    assert raw not in again.content.decode() and raw[:12] in again.content.decode()
    assert 'id="new-key-value"' not in again.content.decode()


def test_the_form_refuses_what_is_not_bought_and_a_second_name(client, developer, weather, maps):
    client.force_login(developer)
    refused = client.post(reverse("my_apps"), {"name": "Mine", "products": ["maps-api"]})
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert "Select a valid choice. maps-api is not one of the available choices." in text(refused)
    bad = client.post(reverse("my_apps"), {"name": "a/b", "products": []})
    assert bad.status_code == HTTPStatus.BAD_REQUEST and "An app name is 1 to 100" in text(bad)
    assert not DeveloperApp.objects.exists()
    client.post(reverse("my_apps"), {"name": "Mine", "products": ["weather-api"]})
    twice = client.post(reverse("my_apps"), {"name": "Mine"})
    assert twice.status_code == HTTPStatus.CONFLICT
    assert "You already have an app named 'Mine'." in text(twice)
    assert not shown_key(twice)
    assert DeveloperApp.objects.count() == 1 and AppKey.objects.count() == 1


def test_adding_a_key_shows_the_new_one_once(client, developer, app_and_key):
    app, first = app_and_key
    client.force_login(developer)
    response = client.post(reverse("my_app_key_add", args=[app.public_id]))
    assert response.status_code == HTTPStatus.OK
    second = shown_key(response)
    assert second and second != first and first not in response.content.decode()
    assert app_key_find(raw=second).app == app
    assert "A new key was added to My app." in text(response)
    assert client.get(reverse("my_app_key_add", args=[app.public_id])).status_code == 405


def test_revoking_a_key_asks_first(client, developer, app_and_key):
    app, raw = app_and_key
    client.force_login(developer)
    url = reverse("my_app_key_revoke", args=[app.public_id, raw[:12]])
    confirm = client.get(url)
    assert confirm.status_code == HTTPStatus.OK
    assert f"Revoke key {raw[:12]}… of My app?" in text(confirm)
    assert "Calls made with this key are refused from now on." in text(confirm)
    assert app_key_find(raw=raw).status == "approved"

    response = client.post(url)
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == reverse("my_apps")
    assert app_key_find(raw=raw).status == "revoked"
    page = text(client.get(response["Location"]))
    assert f"Key {raw[:12]}… of My app is revoked: calls with it are refused now." in page
    assert f"{raw[:12]}… Revoked" in page


def test_deleting_an_app_asks_first(client, developer, app_and_key):
    app, raw = app_and_key
    client.force_login(developer)
    url = reverse("my_app_delete", args=[app.public_id])
    confirm = client.get(url)
    assert "Delete My app? The app and its 1 key are deleted" in text(confirm)
    assert DeveloperApp.objects.exists()
    response = client.post(url)
    assert response["Location"] == reverse("my_apps")
    assert app_key_find(raw=raw) is None and not DeveloperApp.objects.exists()
    assert "App My app is deleted: its keys are refused now." in text(
        client.get(reverse("my_apps"))
    )


def _urls(developer, app, raw) -> dict[str, str]:
    return {
        "my_apps": reverse("my_apps"),
        "my_app_key_revoke": reverse("my_app_key_revoke", args=[app.public_id, raw[:12]]),
        "my_app_delete": reverse("my_app_delete", args=[app.public_id]),
        "my_app_key_add": reverse("my_app_key_add", args=[app.public_id]),
        "people_apps": reverse("people_apps", args=[developer.pk]),
        "people_app_key_revoke": reverse(
            "people_app_key_revoke", args=[developer.pk, app.public_id, raw[:12]]
        ),
    }


OWN = ["my_app_key_revoke", "my_app_delete"]
ADMIN = ["people_apps", "people_app_key_revoke"]


@pytest.mark.parametrize("name", [*OWN, *ADMIN, "my_apps", "my_app_key_add"])
def test_anonymous_visitors_are_sent_to_sign_in(client, developer, app_and_key, name):
    app, raw = app_and_key
    url = _urls(developer, app, raw)[name]
    for method in (client.get, client.post):
        response = method(url)
        assert response.status_code == HTTPStatus.FOUND
        assert response["Location"].startswith(reverse("account_login"))
    assert app_key_find(raw=raw).status == "approved" and AppKey.objects.count() == 1


@pytest.mark.parametrize("name", OWN)
def test_another_developers_app_is_not_found(client, developer, other_developer, app_and_key, name):
    app, raw = app_and_key
    client.force_login(other_developer)
    url = _urls(developer, app, raw)[name]
    assert client.get(url).status_code == HTTPStatus.NOT_FOUND
    assert client.post(url).status_code == HTTPStatus.NOT_FOUND
    add = client.post(reverse("my_app_key_add", args=[app.public_id]))
    assert add.status_code == HTTPStatus.NOT_FOUND
    assert app_key_find(raw=raw).status == "approved" and AppKey.objects.count() == 1
    assert raw[:12] not in client.get(reverse("my_apps")).content.decode()


@pytest.mark.parametrize("name", ADMIN)
def test_developers_do_not_reach_the_admin_pages(client, developer, app_and_key, name):
    app, raw = app_and_key
    client.force_login(developer)
    assert client.get(_urls(developer, app, raw)[name]).status_code == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize("name", ADMIN)
def test_admins_need_administer_monetization(
    client, developer, admin_without_permission, app_and_key, name
):
    app, raw = app_and_key
    client.force_login(admin_without_permission)
    url = _urls(developer, app, raw)[name]
    assert client.get(url).status_code == HTTPStatus.FORBIDDEN
    assert client.post(url).status_code == HTTPStatus.FORBIDDEN
    assert app_key_find(raw=raw).status == "approved"
    tabs = client.get(reverse("people_account", args=[developer.pk])).content.decode()
    assert reverse("people_apps", args=[developer.pk]) not in tabs


def test_admins_do_not_have_apps_of_their_own(client, app_admin):
    client.force_login(app_admin)
    assert client.get(reverse("my_apps")).status_code == HTTPStatus.FORBIDDEN
    assert client.post(reverse("my_apps"), {"name": "x"}).status_code == HTTPStatus.FORBIDDEN
    assert not DeveloperApp.objects.exists()


def test_an_admin_sees_a_developers_apps_and_revokes_a_key(
    client, developer, app_admin, app_and_key
):
    app, raw = app_and_key
    client.force_login(app_admin)
    tabs = client.get(reverse("people_account", args=[developer.pk])).content.decode()
    assert reverse("people_apps", args=[developer.pk]) in tabs
    page = client.get(reverse("people_apps", args=[developer.pk]))
    assert page.status_code == HTTPStatus.OK
    assert (
        f"My app Calls: Weather API Key Status Issued (UTC) Revoke {raw[:12]}… ✓ Approved"
        in text(page)
    )
    assert "Create an app" not in text(page) and "Add a key" not in text(page)
    url = reverse("people_app_key_revoke", args=[developer.pk, app.public_id, raw[:12]])
    assert url in page.content.decode()
    assert "Revoke key" in text(client.get(url))
    response = client.post(url)
    assert response["Location"] == reverse("people_apps", args=[developer.pk])
    assert app_key_find(raw=raw).status == "revoked"
    missing = reverse("people_app_key_revoke", args=[developer.pk, app.public_id, "nosuchprefix"])
    assert client.get(missing).status_code == HTTPStatus.NOT_FOUND


def test_the_apps_page_reads_the_same_few_queries_for_1_or_50_apps(client, developer, weather):
    account = developer.billing_account
    client.force_login(developer)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("my_apps")).status_code == HTTPStatus.OK
        return len(captured)

    app, _ = app_create(account=account, name="app 0", products=[weather], actor=Actor.system())
    one = queries()
    app_key_add(app=app, actor=Actor.system())
    for n in range(1, 50):
        app_create(account=account, name=f"app {n}", products=[weather], actor=Actor.system())
    assert queries() == one
    assert text(client.get(reverse("my_apps"))).count("✓ Approved") == 51


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("width", [1280, 390])
def test_in_chromium_the_copy_button_copies_the_key_shown_once(browser, live_server, width):
    """Under the Content-Security-Policy (no inline script), the copy button puts the shown key
    on the clipboard, and the page fits a phone's width."""
    developer = DeveloperFactory(email="priya@example.com")
    published_plan(ApiProductFactory(name="free-api", display_name="Free API"))
    context = browser.new_context(viewport={"width": width, "height": 844})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = sign_in(context.new_page(), live_server.url, developer.email)
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Refused to" in m.text else None)

    page.goto(live_server.url + reverse("my_apps"))
    page.fill("input[name=name]", "Weather station")
    page.check("input[value=free-api]")
    page.click("text=Create app")
    page.click("button[data-copy-target=new-key-value]")
    page.wait_for_selector("text=The key is copied to your clipboard.")
    copied = page.evaluate("navigator.clipboard.readText()")

    key = app_key_find(raw=copied)
    assert key is not None and key.app.name == "Weather station"
    assert page.inner_text("button[data-copy-target=new-key-value]") == "Copied"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert refused == []
    context.close()
