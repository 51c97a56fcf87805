"""Writes of developer apps: create an app with the products it calls, change them, issue a
second key (rotation), revoke a key, delete an app. Every change is audited.

A key is shown once, in the value these functions return; only its SHA-256 hash and a short
prefix are stored (billing.developer_apps.keys)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.audit import audit_log
from billing.developer_apps.keys import key_hash, key_new, key_prefix
from billing.developer_apps.selectors import products_allowed
from billing.exceptions import AlreadyExists, BillingError
from billing.ledger.entries import Actor
from billing.models import ApiProduct, AppKey, BillingAccount, DeveloperApp

# As Apigee's app names, less the characters a URL path would need escaped.
APP_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._ -]{0,98}[A-Za-z0-9._-])?")
APP_NAME_RULE = (
    "An app name is 1 to 100 letters, digits, spaces, '.', '_' and '-', and starts with a "
    "letter or a digit."
)


def app_name_check(name: str) -> str:
    if not APP_NAME.fullmatch(name):
        raise BillingError(APP_NAME_RULE)
    return name


def _products_check(account: BillingAccount, products: Iterable[ApiProduct]) -> list[ApiProduct]:
    """Only products the developer bought (an open subscription) or free ones."""
    chosen = {product.pk: product for product in products}
    allowed = {product.pk for product in products_allowed(account=account)}
    refused = sorted(p.display_name for pk, p in chosen.items() if pk not in allowed)
    if refused:
        raise BillingError(
            f"An app may call only the API products you have purchased, or free ones: "
            f"purchase {', '.join(refused)} first."
        )
    return list(chosen.values())


def _key_issue(app: DeveloperApp) -> tuple[AppKey, str]:
    raw = key_new()
    key = AppKey.objects.create(app=app, prefix=key_prefix(raw), key_hash=key_hash(raw))
    return key, raw


def app_create(
    *, account: BillingAccount, name: str, products: Iterable[ApiProduct], actor: Actor
) -> tuple[DeveloperApp, str]:
    """A new app calling `products`, and its first key: returned raw, the one time it exists
    outside the caller's hands."""
    name = app_name_check(name)
    chosen = _products_check(account, products)
    try:
        with transaction.atomic():
            app = DeveloperApp.objects.create(billing_account=account, name=name)
            app.api_products.set(chosen)
            key, raw = _key_issue(app)
    except IntegrityError:
        raise AlreadyExists(f"You already have an app named {name!r}.") from None
    audit_log(
        actor=actor.user,
        action="app.create",
        target_user=account.user,
        app=str(app.public_id),
        name=name,
        products=sorted(p.name for p in chosen),
        key_prefix=key.prefix,
    )
    return app, raw


def app_products_set(
    *, app: DeveloperApp, products: Iterable[ApiProduct], actor: Actor
) -> DeveloperApp:
    """Replace the products the app calls (same rule as at creation)."""
    chosen = _products_check(app.billing_account, products)
    with transaction.atomic():
        app.api_products.set(chosen)
        app.save(update_fields=["updated_at"])
    audit_log(
        actor=actor.user,
        action="app.products_set",
        target_user=app.billing_account.user,
        app=str(app.public_id),
        name=app.name,
        products=sorted(p.name for p in chosen),
    )
    return app


def app_key_add(*, app: DeveloperApp, actor: Actor) -> tuple[AppKey, str]:
    """A further key for the app (rotation: issue the new one, move callers, revoke the old)."""
    with transaction.atomic():  # the key and its audit record, together
        key, raw = _key_issue(app)
        app.save(update_fields=["updated_at"])
        _audit_key(actor, "app.key_add", app, key)
    return key, raw


def app_key_revoke(*, key: AppKey, actor: Actor) -> AppKey:
    """Refused from the next call on: the gateway reads the key's status from the database
    each time. Revoking a revoked key changes nothing."""
    now = timezone.now()
    with transaction.atomic():  # the revocation and its audit record, together
        revoked = AppKey.objects.filter(pk=key.pk, status=AppKey.Status.APPROVED).update(
            status=AppKey.Status.REVOKED, revoked_at=now
        )
        key.refresh_from_db(fields=["status", "revoked_at"])
        if revoked:
            key.app.save(update_fields=["updated_at"])
            _audit_key(actor, "app.key_revoke", key.app, key)
    return key


def _audit_key(actor: Actor, action: str, app: DeveloperApp, key: AppKey) -> None:
    audit_log(
        actor=actor.user,
        action=action,
        target_user=app.billing_account.user,
        app=str(app.public_id),
        name=app.name,
        key_prefix=key.prefix,
    )


def app_delete(*, app: DeveloperApp, actor: Actor) -> None:
    """Delete the app and its keys: its keys stop working at once. Usage keeps only a key's
    prefix, so nothing else refers to them."""
    prefixes = list(app.keys.order_by("issued_at", "id").values_list("prefix", flat=True))
    public_id, name, user = str(app.public_id), app.name, app.billing_account.user
    app.delete()
    audit_log(
        actor=actor.user,
        action="app.delete",
        target_user=user,
        app=public_id,
        name=name,
        key_prefixes=prefixes,
    )
