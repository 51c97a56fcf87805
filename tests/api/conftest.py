"""Helpers for the Apigee-compatible API tests: bearer tokens, requests and a snapshot of the
billing state, so every error case can prove that nothing changed."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client

from accounts.models import User
from accounts.services import api_token_create
from billing.models import AuditLogEntry, BillingAccount, BillingTypeChange, LedgerEntry, Wallet


def developer_path(email: str, suffix: str, *, org: str | None = None) -> str:
    return f"/v1/organizations/{org or settings.PORTAL_ORG}/developers/{email}/{suffix}"


class Api:
    """Sends requests the way a gateway or back-office script would: JSON with a bearer token.

    500s come back as responses (not exceptions) so a test reads as "expected 400, got 500".
    """

    def __init__(self) -> None:
        self.client = Client(raise_request_exception=False)

    def token_for(self, user: User) -> str:
        _, raw = api_token_create(user=user, name="tests")
        return raw

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        authorization: str | None = None,
        raw: bytes | str | None = None,
    ) -> HttpResponse:
        headers = {}
        if authorization is not None:
            headers["Authorization"] = authorization
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"headers": headers}
        if raw is not None:
            kwargs.update(data=raw, content_type="application/json")
        elif body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        response = self.client.generic(method.upper(), path, **kwargs)
        # Every JSON answer reads the same, whether ninja or a hot view built it.
        if response.get("Content-Type", "").startswith("application/json"):
            assert response["Content-Type"] == "application/json; charset=utf-8", path
        return response


@pytest.fixture
def api() -> Api:
    return Api()


def error_of(response: HttpResponse, status: HTTPStatus) -> dict[str, Any]:
    """The Google-style error body, after checking it has the documented shape."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "status"}
    assert error["code"] == status
    assert isinstance(error["message"], str) and error["message"].strip()
    return error


def billing_state() -> dict[str, Any]:
    """Everything a request could change in billing: wallets, ledger, billing types, audit."""
    return {
        "wallets": list(
            Wallet.objects.order_by("pk").values_list(
                "pk", "billing_account_id", "currency", "balance", "last_credit_at"
            )
        ),
        "ledger": list(
            LedgerEntry.objects.order_by("pk").values_list("pk", "transaction_id", "amount")
        ),
        "billing_types": list(
            BillingAccount.objects.order_by("pk").values_list("pk", "billing_type")
        ),
        "billing_type_changes": BillingTypeChange.objects.count(),
        "audit": AuditLogEntry.objects.count(),
    }
