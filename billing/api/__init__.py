"""The Apigee-compatible REST API (seed 004), under /v1/. Handlers parse, check who is asking,
call a service and shape the answer; errors are Google-style JSON (billing/api/errors.py)."""

from __future__ import annotations

from ninja import NinjaAPI

from billing.api import apps, developers, limits, products, subscriptions, usage
from billing.api.auth import TokenAuth
from billing.api.errors import HANDLERS

api = NinjaAPI(
    title="Developer portal monetization API",
    version="1",
    description=(
        "Apigee-compatible developer billing: monetization config, prepaid balances, API "
        "products, rate plans and developer subscriptions."
    ),
    auth=TokenAuth(),
    urls_namespace="api_v1",
    openapi_url="/openapi.json",
    docs_url=None,  # the interactive docs load scripts from a CDN; the JSON document is enough
)
for exception, handler in HANDLERS.items():
    api.add_exception_handler(exception, handler)
# The gateway's calls first: URLs are tried in this order, and they come many a second.
api.add_router("", limits.router)
api.add_router("", usage.router)
api.add_router("", developers.router)
api.add_router("", products.router)
api.add_router("", subscriptions.router)
api.add_router("", apps.router)
