"""Developer apps (Apigee X `developers/{email}/apps`): create an app with the API products it
calls, read it back, delete it, add a key (rotation) and revoke one.

The developer acts for themself; others need "Administer monetization". A key's value
(`consumerKey`) is in the answer that made it and nowhere else: afterwards only its prefix
names it. The rules (which products an app may name, unique names) are
billing.developer_apps.services'."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field, StrictStr

from billing.api.developers import developer_account
from billing.api.errors import ApiError
from billing.api.schemas import ERRORS, ERRORS_AND_CONFLICT, epoch_ms
from billing.developer_apps.keys import PREFIX_LENGTH
from billing.developer_apps.selectors import app_get, apps_of
from billing.developer_apps.services import (
    app_create,
    app_delete,
    app_key_add,
    app_key_revoke,
    app_name_check,
)
from billing.ledger.entries import Actor
from billing.models import ApiProduct, AppKey, BillingAccount, DeveloperApp

router = Router()
APPS = "/organizations/{org}/developers/{email}/apps"
APP = APPS + "/{app_name}"
KEYS = APP + "/keys"
KEY = KEYS + "/{key_prefix}"

ADMINISTER = "billing.administer_monetization"

# What the service accepts, said in the document too (billing.developer_apps.services.APP_NAME).
_APP_NAME: Any = {"pattern": "^[A-Za-z0-9]([A-Za-z0-9._ -]{0,98}[A-Za-z0-9._-])?$"}
_SLUG: Any = {"pattern": "^[A-Za-z0-9_-]{1,100}$"}


class AppIn(Schema):
    model_config = {"extra": "forbid"}

    name: StrictStr = Field(..., json_schema_extra=_APP_NAME, description="Unique per developer.")
    apiProducts: list[StrictStr] = Field(
        default_factory=list,
        max_length=100,
        description="Names of the API products it calls: purchased, or free.",
        json_schema_extra={"items": {"type": "string", **_SLUG}},
    )


class CredentialOut(Schema):
    consumerKey: str | None = Field(None, description="Only in the answer that made the key.")
    consumerKeyPrefix: str
    status: str
    issuedAt: str = Field(..., description="Epoch milliseconds, as a string.")


class AppOut(Schema):
    name: str
    appId: str
    apiProducts: list[str]
    status: str
    credentials: list[CredentialOut]
    createdAt: str
    lastModifiedAt: str


class AppList(Schema):
    app: list[AppOut]


def app_out(app: DeveloperApp, *, new_key: tuple[AppKey, str] | None = None) -> dict[str, Any]:
    credentials = []
    for key in app.keys.all():
        credential = {
            "consumerKeyPrefix": key.prefix,
            "status": key.status,
            "issuedAt": epoch_ms(key.issued_at),
        }
        if new_key is not None and new_key[0].pk == key.pk:
            credential = {"consumerKey": new_key[1], **credential}
        credentials.append(credential)
    return {
        "name": app.name,
        "appId": str(app.public_id),
        "apiProducts": [product.name for product in app.api_products.all()],
        "status": "approved",
        "credentials": credentials,
        "createdAt": epoch_ms(app.created_at),
        "lastModifiedAt": epoch_ms(app.updated_at),
    }


def _actor(request: HttpRequest) -> Actor:
    return Actor.for_token(request.auth)  # type: ignore[attr-defined]


def _app(account: BillingAccount, name: str) -> DeveloperApp:
    found = app_get(account=account, name=name) if name.isprintable() and len(name) <= 100 else None
    if found is None:
        raise ApiError(404, f"App {name!r} not found for this developer.")
    return found


def _products(names: list[str]) -> list[ApiProduct]:
    wanted = set(names)
    if not all(name.isprintable() and len(name) <= 100 for name in wanted):
        raise ApiError(400, "apiProducts: a product name is at most 100 printable characters.")
    found = {p.name: p for p in ApiProduct.objects.filter(name__in=wanted)}
    missing = sorted(wanted - set(found))
    if missing:
        raise ApiError(404, f"API product {missing[0]!r} not found.")
    return [found[name] for name in sorted(wanted)]


@router.post(
    APPS,
    response={200: AppOut, **ERRORS_AND_CONFLICT},
    exclude_none=True,
    operation_id="billing_api_create_developer_app",
)
def create_app(request: HttpRequest, org: str, email: str, body: AppIn) -> dict[str, Any]:
    """Creates the app and its first key; the key's value (consumerKey) is in this answer
    only. An app may call only products the developer has purchased, or free ones."""
    account = developer_account(request, org, email, ADMINISTER, own=True)
    name = app_name_check(body.name)
    products = _products(body.apiProducts)
    app, raw = app_create(account=account, name=name, products=products, actor=_actor(request))
    created = _app(account, app.name)
    key = created.keys.all()[0]
    return app_out(created, new_key=(key, raw))


@router.get(
    APPS,
    response={200: AppList, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_list_developer_apps",
)
def list_apps(request: HttpRequest, org: str, email: str) -> dict[str, Any]:
    account = developer_account(request, org, email, ADMINISTER, own=True)
    return {"app": [app_out(app) for app in apps_of(account=account)]}


@router.get(
    APP,
    response={200: AppOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_get_developer_app",
)
def get_app(request: HttpRequest, org: str, email: str, app_name: str) -> dict[str, Any]:
    account = developer_account(request, org, email, ADMINISTER, own=True)
    return app_out(_app(account, app_name))


@router.delete(
    APP,
    response={200: AppOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_delete_developer_app",
)
def delete_app(request: HttpRequest, org: str, email: str, app_name: str) -> dict[str, Any]:
    """Deletes the app and its keys (refused from now on); answers the app as it was."""
    account = developer_account(request, org, email, ADMINISTER, own=True)
    app = _app(account, app_name)
    answer = app_out(app)
    app_delete(app=app, actor=_actor(request))
    return answer


@router.post(
    KEYS,
    response={200: AppOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_create_developer_app_key",
)
def create_app_key(request: HttpRequest, org: str, email: str, app_name: str) -> dict[str, Any]:
    """Adds a key (rotation); its value (consumerKey) is in this answer only. Takes no body."""
    account = developer_account(request, org, email, ADMINISTER, own=True)
    app = _app(account, app_name)
    key, raw = app_key_add(app=app, actor=_actor(request))
    return app_out(_app(account, app.name), new_key=(key, raw))


@router.delete(
    KEY,
    response={200: AppOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_revoke_developer_app_key",
)
def revoke_app_key(
    request: HttpRequest, org: str, email: str, app_name: str, key_prefix: str
) -> dict[str, Any]:
    """Revokes the key named by its prefix: refused from the next call on. The key stays
    listed, revoked; revoking it again changes nothing."""
    account = developer_account(request, org, email, ADMINISTER, own=True)
    app = _app(account, app_name)
    key = next((k for k in app.keys.all() if k.prefix == key_prefix), None)
    if key is None or len(key_prefix) != PREFIX_LENGTH:
        raise ApiError(404, f"Key {key_prefix!r} not found in app {app.name!r}.")
    app_key_revoke(key=key, actor=_actor(request))
    return app_out(_app(account, app.name))
