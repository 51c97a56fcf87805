"""What the usage tests share: an app with a key, and events as a gateway sends them."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from billing.developer_apps.keys import key_hash, key_new, key_prefix
from billing.models import AppKey, DeveloperApp
from billing.usage.ingest import UsageReport


def app_with_key(account, *products, name: str = "My app") -> tuple[DeveloperApp, AppKey, str]:
    app = DeveloperApp.objects.create(billing_account=account, name=name)
    app.api_products.set(products)
    raw = key_new()
    key = AppKey.objects.create(app=app, prefix=key_prefix(raw), key_hash=key_hash(raw))
    return app, key, raw


def report(
    event_id: object,
    key: object,
    product: object,
    *,
    time: object = None,
    units: object = None,
    multiplier: object = None,
) -> UsageReport:
    if time is None:
        time = timezone.now().isoformat()
    elif isinstance(time, datetime):
        time = time.isoformat()
    return UsageReport(event_id, key, product, time, units, multiplier)
