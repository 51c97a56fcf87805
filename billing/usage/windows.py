"""The periods usage is counted in: the calendar month (UTC) for bands, and the product's quota
window (`quota_interval` × `quota_time_unit`) for quotas. Ingest counts in them; the limits
check reads the same counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing.models import ApiProduct

_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def month_period(at: datetime) -> str:
    at = at.astimezone(UTC)
    return f"{at.year:04d}-{at.month:02d}"


def quota_window(product: ApiProduct, at: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the quota window holding `at`: windows of `quota_interval` units counted
    from the epoch (UTC), or calendar months for the month unit."""
    at = at.astimezone(UTC)
    interval = max(1, product.quota_interval)
    if product.quota_time_unit == ApiProduct.QuotaTimeUnit.MONTH:
        months = at.year * 12 + at.month - 1
        first = months - months % interval
        start = datetime(first // 12, first % 12 + 1, 1, tzinfo=UTC)
        after = first + interval
        return start, datetime(after // 12, after % 12 + 1, 1, tzinfo=UTC)
    length = _UNIT_SECONDS[product.quota_time_unit] * interval
    elapsed = int((at - _EPOCH).total_seconds())
    start = _EPOCH + timedelta(seconds=elapsed - elapsed % length)
    return start, start + timedelta(seconds=length)


def quota_period(start: datetime) -> str:
    """The UsageCounter period of a quota window: "q:" and its start (UTC, to the second)."""
    return f"q:{start.astimezone(UTC):%Y-%m-%dT%H:%M:%S}"
