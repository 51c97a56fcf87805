"""The permission matrix: every admin page as anonymous, owner, another developer, an admin
without the permission and an admin with it."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.urls import reverse

from billing.billing_accounts.selectors import organization_settings_get
from billing.models import BillingType

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "owner", "other_developer", "admin_without_permission", "portal_admin"]


@pytest.fixture
def as_role(client, request, developer):
    """Log the client in as one role; the page under test belongs to `developer` (the owner)."""

    def login(role: str):
        if role == "owner":
            client.force_login(developer)
        elif role != "anonymous":
            client.force_login(request.getfixturevalue(role))
        return client

    return login


def assert_login_redirect(response, url: str) -> None:
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == f"{reverse('account_login')}?next={url}"


# Expected status per role: "login" means a redirect to the login page.
PAGES = {
    "people_list": (
        lambda dev: reverse("people_list"),
        {
            "owner": 404,
            "other_developer": 404,
            "admin_without_permission": 200,
            "portal_admin": 200,
        },
    ),
    "people_account": (
        lambda dev: reverse("people_account", args=[dev.pk]),
        {
            "owner": 404,
            "other_developer": 404,
            "admin_without_permission": 200,
            "portal_admin": 200,
        },
    ),
    "billing_type_tab": (
        lambda dev: reverse("billing_type_tab", args=[dev.pk]),
        {
            "owner": 404,
            "other_developer": 404,
            "admin_without_permission": 403,
            "portal_admin": 200,
        },
    ),
    "people_balance": (
        lambda dev: reverse("people_balance", args=[dev.pk]),
        {
            "owner": 404,
            "other_developer": 404,
            "admin_without_permission": 403,
            "portal_admin": 200,
        },
    ),
    "monetization_settings": (
        lambda dev: reverse("monetization_settings"),
        {
            "owner": 404,
            "other_developer": 404,
            "admin_without_permission": 403,
            "portal_admin": 200,
        },
    ),
}


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("role", ROLES)
def test_get_permission_matrix(as_role, developer, page, role):
    url_for, expected = PAGES[page]
    url = url_for(developer)
    response = as_role(role).get(url)
    if role == "anonymous":
        assert_login_redirect(response, url)
    else:
        assert response.status_code == expected[role]


@pytest.mark.parametrize("role", ROLES)
def test_post_billing_type_matrix_changes_only_for_permitted_admin(as_role, developer, role):
    url = reverse("billing_type_tab", args=[developer.pk])
    response = as_role(role).post(
        url, {"billing_type": "PREPAID", "expected_current": "", "confirm": "1"}
    )
    developer.billing_account.refresh_from_db()
    if role == "portal_admin":
        assert response.status_code == HTTPStatus.FOUND
        assert developer.billing_account.billing_type == BillingType.PREPAID
        return
    if role == "anonymous":
        assert_login_redirect(response, url)
    else:
        expected = PAGES["billing_type_tab"][1][role]
        assert response.status_code == expected
    assert developer.billing_account.billing_type == ""


@pytest.mark.parametrize("role", ROLES)
def test_post_settings_matrix_changes_only_for_permitted_admin(as_role, role):

    url = reverse("monetization_settings")
    response = as_role(role).post(
        url, {"section": "billing_type", "default_billing_type": "PREPAID", "confirm": "1"}
    )
    default = organization_settings_get().default_billing_type
    if role == "portal_admin":
        assert response.status_code == HTTPStatus.FOUND
        assert default == BillingType.PREPAID
        return
    if role == "anonymous":
        assert_login_redirect(response, url)
    else:
        assert response.status_code == PAGES["monetization_settings"][1][role]
    assert default == BillingType.POSTPAID


@pytest.mark.parametrize("url_name", ["my_account", "my_balance"])
def test_developer_pages_send_anonymous_to_login(client, url_name):
    url = reverse(url_name)
    assert_login_redirect(client.get(url), url)


def test_billing_type_tab_link_only_for_admins_with_permission(
    client, developer, admin_without_permission, portal_admin
):
    url = reverse("people_account", args=[developer.pk])
    tab = reverse("billing_type_tab", args=[developer.pk])
    client.force_login(admin_without_permission)
    assert tab not in client.get(url).content.decode()
    client.force_login(portal_admin)
    assert tab in client.get(url).content.decode()


def test_unknown_or_staff_ids_are_404_for_admins(client, portal_admin):
    client.force_login(portal_admin)
    assert client.get(reverse("people_account", args=[999999])).status_code == 404
    assert client.get(reverse("billing_type_tab", args=[999999])).status_code == 404
    # Admins are not developers: their accounts have no billing type tab.
    assert client.get(reverse("billing_type_tab", args=[portal_admin.pk])).status_code == 404
    assert client.get("/people/not-a-number/account/").status_code == 404


def test_inactive_staff_is_not_an_admin(client, portal_admin, developer):
    portal_admin.is_active = False
    portal_admin.save()
    client.force_login(portal_admin)
    response = client.get(reverse("people_account", args=[developer.pk]))
    # Django logs inactive users out at once: they are anonymous again.
    assert response.status_code == HTTPStatus.FOUND


def test_the_admin_sign_in_form_is_allauths_which_limits_failed_attempts(client, portal_admin):
    portal_admin.set_password("right-password-123")
    portal_admin.save()

    shown = client.get("/admin/login/?next=/admin/")
    guessed = client.post(
        "/admin/login/", {"username": portal_admin.email, "password": "right-password-123"}
    )

    assert shown.status_code == 302 and shown["Location"].startswith("/accounts/login/")
    assert guessed.status_code == 302 and guessed["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session  # the admin form no longer signs anybody in
    for _ in range(30):
        client.post("/accounts/login/", {"login": portal_admin.email, "password": "wrong"})
    limited = client.post(
        "/accounts/login/", {"login": portal_admin.email, "password": "right-password-123"}
    )
    assert limited.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("path", ["/", "/healthz", "/account/balance/"])
def test_head_requests_are_answered_like_get(client, developer, path):
    """Uptime checks and link checkers send HEAD; a 405 made pages look broken."""
    client.force_login(developer)
    get, head = client.get(path), client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
