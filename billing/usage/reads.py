"""What a usage batch reads before it counts: the keys it names with their accounts, the
apps' products, the products, their subscriptions (with the plan bought) and published plans.
Five constant statements of plain SQL, prepared once per connection (billing/sql.py): the ORM
spent more time building these queries than PostgreSQL spent running them."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import connection, models

from billing.models import (
    ApiProduct,
    AppKey,
    BillingAccount,
    DeveloperApp,
    RatePlan,
    Subscription,
)
from billing.sql import fetch_all, instance_from_row, list_param, model_columns, one_of


@dataclass(frozen=True)
class BatchReads:
    keys: dict[str, tuple[AppKey, BillingAccount]]  # by key hash
    app_products: set[tuple[int, int]]  # (app id, product id)
    products: dict[str, ApiProduct]  # by name
    subscriptions: dict[tuple[int, int], list[Subscription]]  # by (account, product), latest first
    plans: dict[int, list[RatePlan]]  # published, by product, latest start first


def batch_reads(*, key_hashes: Iterable[str], product_names: Iterable[str]) -> BatchReads:
    keys = _keys(key_hashes)
    app_ids = {key.app_id for key, _ in keys.values()}
    app_products = {(row[0], row[1]) for row in _run(_APP_PRODUCTS, [list_param(app_ids)])}
    products = {
        product.name: product
        for product in _instances(ApiProduct, _PRODUCTS, [list_param(product_names)])
    }
    product_ids = list_param(product.pk for product in products.values())
    accounts = list_param({account.pk for _, account in keys.values()})
    subscriptions: dict[tuple[int, int], list[Subscription]] = defaultdict(list)
    width = len(Subscription._meta.concrete_fields)
    for row in _run(_SUBSCRIPTIONS, [accounts, product_ids]):
        subscription = instance_from_row(Subscription, row[:width])
        subscription.rate_plan = instance_from_row(RatePlan, row[width:])
        subscriptions[(subscription.billing_account_id, subscription.product_id)].append(
            subscription
        )
    plans: dict[int, list[RatePlan]] = defaultdict(list)
    for plan in _instances(RatePlan, _PLANS, [product_ids, RatePlan.State.PUBLISHED]):
        plans[plan.product_id].append(plan)
    return BatchReads(keys, app_products, products, subscriptions, plans)


def _keys(key_hashes: Iterable[str]) -> dict[str, tuple[AppKey, BillingAccount]]:
    width = len(AppKey._meta.concrete_fields)
    found = {}
    for row in _run(_KEYS, [list_param(key_hashes)]):
        key = instance_from_row(AppKey, row[:width])
        found[key.key_hash] = (key, instance_from_row(BillingAccount, row[width:]))
    return found


M = TypeVar("M", bound=models.Model)


def _instances(model: type[M], sql: str, params: list[Any]) -> list[M]:
    return [instance_from_row(model, row) for row in _run(sql, params)]


def _run(template: str, params: list[Any]) -> list[tuple[Any, ...]]:
    return fetch_all(_statement(template, connection.vendor), params)


@functools.cache
def _statement(template: str, _vendor: str) -> str:
    """The statement's text for this database (how a list is passed differs), built once."""
    return template.format(
        keys=AppKey._meta.db_table,
        apps=DeveloperApp._meta.db_table,
        accounts=BillingAccount._meta.db_table,
        app_products=DeveloperApp.api_products.through._meta.db_table,
        products=ApiProduct._meta.db_table,
        subscriptions=Subscription._meta.db_table,
        plans=RatePlan._meta.db_table,
        key_columns=", ".join(model_columns(AppKey, "k")),
        account_columns=", ".join(model_columns(BillingAccount, "b")),
        product_columns=", ".join(model_columns(ApiProduct, "p")),
        subscription_columns=", ".join(model_columns(Subscription, "s")),
        plan_columns=", ".join(model_columns(RatePlan, "r")),
        key_hash_in=one_of("k.key_hash"),
        app_in=one_of("developerapp_id"),
        name_in=one_of("p.name"),
        account_in=one_of("s.billing_account_id"),
        product_in=one_of("s.product_id"),
        plan_product_in=one_of("r.product_id"),
    )


_KEYS = """
SELECT {key_columns}, {account_columns}
FROM {keys} k JOIN {apps} a ON a.id = k.app_id JOIN {accounts} b ON b.id = a.billing_account_id
WHERE {key_hash_in}
"""
_APP_PRODUCTS = "SELECT developerapp_id, apiproduct_id FROM {app_products} WHERE {app_in}"
_PRODUCTS = "SELECT {product_columns} FROM {products} p WHERE {name_in}"
_SUBSCRIPTIONS = """
SELECT {subscription_columns}, {plan_columns}
FROM {subscriptions} s JOIN {plans} r ON r.id = s.rate_plan_id
WHERE {account_in} AND {product_in}
ORDER BY s.start_time DESC, s.id DESC
"""
_PLANS = """
SELECT {plan_columns} FROM {plans} r WHERE {plan_product_in} AND r.state = %s
ORDER BY r.start_time DESC, r.id DESC
"""
