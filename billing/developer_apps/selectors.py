"""Reads of developer apps: a developer's apps with their keys and products, one app, the
products an app may name, and the gateway's key look-up (one indexed read by hash)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from billing.catalog.selectors import products_on_sale
from billing.developer_apps.keys import key_hash
from billing.models import ApiProduct, AppKey, BillingAccount, DeveloperApp, RatePlan
from billing.subscriptions.selectors import products_bought


def apps_of(*, account: BillingAccount) -> QuerySet[DeveloperApp]:
    """The account's apps by name, keys and products prefetched: three queries, however many
    apps, keys and products."""
    return (
        DeveloperApp.objects.filter(billing_account=account)
        .prefetch_related(
            Prefetch("keys", queryset=AppKey.objects.order_by("issued_at", "id")),
            Prefetch("api_products", queryset=ApiProduct.objects.order_by("display_name", "name")),
        )
        .order_by("name", "id")
    )


def app_get(*, account: BillingAccount, name: str) -> DeveloperApp | None:
    """One of the account's apps by its name, keys and products prefetched."""
    return apps_of(account=account).filter(name=name).first()


def app_get_by_public_id(*, account: BillingAccount, public_id: str) -> DeveloperApp | None:
    return apps_of(account=account).filter(public_id=public_id).first()


def app_key_find(*, raw: str) -> AppKey | None:
    """The key a gateway was sent, approved or revoked, with its app and developer: one read
    through the unique index on the hash. None for a key that was never issued."""
    return (
        AppKey.objects.select_related("app__billing_account__user")
        .filter(key_hash=key_hash(raw))
        .first()
    )


def plan_is_free(plan: RatePlan) -> bool:
    """No setup fee, no recurring fee, and no call that costs anything."""
    return (
        plan.setup_fee_nanos == 0
        and plan.recurring_fee_nanos == 0
        and not any(band.get("fee_nanos") for band in plan.consumption_rates or [])
    )


def products_allowed(*, account: BillingAccount) -> list[ApiProduct]:
    """What an app of the account may name, by display name: the products it has an open
    subscription to, and the free ones on sale (a plan in force that charges nothing)."""
    bought = products_bought(account=account)
    allowed = {
        product.pk: product
        for product in products_on_sale()
        if product.pk in bought or plan_is_free(product.plans_in_force[-1])  # type: ignore[attr-defined]
    }
    missing = bought - set(allowed)
    if missing:  # bought, and no plan on sale any more: still the developer's to call
        allowed.update({p.pk: p for p in ApiProduct.objects.filter(pk__in=missing)})
    return sorted(allowed.values(), key=lambda p: (p.display_name.lower(), p.name))
