"""A Content-Security-Policy on every page: no inline script runs, no other site frames the
portal, forms lead only to the portal and Stripe's payment page."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in policy.split(";") if part.strip())
    }


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/accounts/signup/", "/healthz"])
def test_every_page_refuses_inline_scripts_and_framing(client, path):
    response = client.get(path)

    assert response.status_code == HTTPStatus.OK
    policy = directives(response)
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert "https://checkout.stripe.com" in policy["form-action"]


def test_a_developers_balance_page_has_the_policy_too(client, prepaid_account):
    client.force_login(prepaid_account.user)
    assert "script-src 'self'" in client.get(reverse("my_balance"))["Content-Security-Policy"]


def test_no_template_carries_inline_script_or_style():
    """What the policy would refuse must not be written in the first place: every script and
    style comes from static/."""
    root = Path(__file__).resolve().parents[2] / "templates"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.html")
        for text in [path.read_text()]
        if "<style" in text
        or " style=" in text
        or " onclick=" in text
        or ("<script" in text and "<script src=" not in text)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "path",
    [
        "/account/",
        "/account/balance/",
        "/account/balance/add-credit/USD/",
        "/account/balance/card/test/",
        "/account/balance/auto-recharge/USD/",
    ],
)
def test_head_is_answered_as_get_without_a_body(client, prepaid_account, path):
    """HEAD answered 405 on several pages (uptime checks and link checkers use it)."""
    client.force_login(prepaid_account.user)
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code != HTTPStatus.METHOD_NOT_ALLOWED
    assert head.content == b""


@pytest.mark.parametrize("who", ["portal_admin"])
def test_head_on_admin_pages(client, who, prepaid_account, request):
    client.force_login(request.getfixturevalue(who))
    user_id = prepaid_account.user.pk
    for path in (
        "/admin/config/monetization/settings/",
        f"/people/{user_id}/account/balance/",
        f"/people/{user_id}/account/billing-type/",
    ):
        assert client.head(path).status_code == HTTPStatus.OK, path


def test_a_nul_in_an_admin_list_filter_is_refused_not_a_server_error(client, portal_admin):
    """The Django admin's list filters passed %00 to PostgreSQL, which answered with an error."""
    client.force_login(portal_admin)
    response = client.get("/admin/billing/auditlogentry/?action__exact=%00")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"NUL character" in response.content
