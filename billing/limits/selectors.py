"""The gateway's question before a call: may this key call this product now? A read from the
database as of now: it never changes money, and a revoked key is refused at once."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from billing.developer_apps.keys import key_hash
from billing.models import ApiProduct, AppKey, BillingType, OrganizationSettings, UsageCounter
from billing.money import Money
from billing.sql import aware, fetch_one
from billing.usage.windows import quota_period, quota_window


class Reason:
    OK = "OK"
    INVALID_KEY = "INVALID_KEY"
    KEY_REVOKED = "KEY_REVOKED"
    PRODUCT_NOT_IN_APP = "PRODUCT_NOT_IN_APP"
    NO_SUBSCRIPTION = "NO_SUBSCRIPTION"
    SUBSCRIPTION_NOT_STARTED = "SUBSCRIPTION_NOT_STARTED"
    SUBSCRIPTION_ENDED = "SUBSCRIPTION_ENDED"
    UNPAID = "UNPAID"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"


@dataclass(frozen=True)
class Quota:
    limit: int
    used: int
    reset_time: datetime


@dataclass(frozen=True)
class LimitsAnswer:
    reason: str
    developer: str = ""
    subscription: str = ""
    balance: Money | None = None
    quota: Quota | None = None

    @property
    def allowed(self) -> bool:
        return self.reason == Reason.OK


def limits_check(
    *, consumer_key: str, product_name: str, now: datetime | None = None
) -> LimitsAnswer:
    """One answer and its one reason, checked in the order a gateway needs them: the key, the
    app's products, the subscription, the fee, the quota, then the prepaid balance. One read
    (the gateway asks before every call): see `_LIMITS_SQL`."""
    values = fetch_one(_LIMITS_SQL, limits_params(consumer_key, product_name))
    return _answer(_row_of(values), now or timezone.now())


def limits_read() -> str:
    """The limits check's statement (parameters: `limits_params`), for a caller that reads
    more in the same round trip: the API's gateway check reads its token too."""
    return _LIMITS_SQL


def limits_answer(values: Sequence[Any] | None, now: datetime) -> LimitsAnswer:
    """The answer from the statement's columns (None, or empty columns: no such key)."""
    return _answer(_row_of(values), now)


def _answer(row: _Row | None, now: datetime) -> LimitsAnswer:
    if row is None:
        return LimitsAnswer(Reason.INVALID_KEY)
    developer = row.developer
    if row.key_status != AppKey.Status.APPROVED:
        return LimitsAnswer(Reason.KEY_REVOKED, developer)
    if row.product_id is None:
        return LimitsAnswer(Reason.PRODUCT_NOT_IN_APP, developer)
    if row.subscription is None:
        return LimitsAnswer(Reason.NO_SUBSCRIPTION, developer)
    reason = _subscription_reason(row, now)
    balance = Money(row.balance or 0, str(row.currency))
    quota = _quota(row, now)
    answer = LimitsAnswer(reason, developer, row.subscription, balance, quota)
    if reason != Reason.OK:
        return answer
    if quota is not None and quota.used >= quota.limit:
        return _with(answer, Reason.QUOTA_EXCEEDED)
    floor = _prepaid_floor(row)
    # Usage still owed is money already spent: a credit must pay it before calls go on.
    if floor is not None and balance.nanos - (row.usage_owed or 0) <= floor:
        return _with(answer, Reason.INSUFFICIENT_BALANCE)
    return answer


def _with(answer: LimitsAnswer, reason: str) -> LimitsAnswer:
    return LimitsAnswer(reason, answer.developer, answer.subscription, answer.balance, answer.quota)


@dataclass(frozen=True)
class _Row:
    """What `_LIMITS_SQL` reads, in its column order."""

    key_status: str
    developer: str
    own_billing_type: str
    product_id: int | None
    quota: int | None
    quota_interval: int | None
    quota_time_unit: str | None
    subscription_id: int | None
    subscription: str | None
    start_time: datetime | None
    end_time: datetime | None
    unpaid_since: datetime | None
    currency: str | None
    balance: int | None
    usage_owed: int | None
    default_billing_type: str | None
    grace: int | None
    counter_period: str | None
    counter_calls: int | None


# The gateway asks before every call, so this is one statement of plain SQL (an ORM query cost
# more to build than to run): the key and its owner; the product, if the key's app may call it;
# the open subscription to it if there is one, else the one that ended last, with its plan's
# currency and that wallet's balance; the organisation's default billing type and grace; and the
# subscription's latest quota counter (the window it counts is checked in `_quota`). Standard
# SQL, for PostgreSQL and SQLite alike.
_LIMITS_SQL = """
SELECT k.status, u.email, ba.billing_type,
       p.id, p.quota, p.quota_interval, p.quota_time_unit,
       s.id, s.public_id, s.start_time, s.end_time, s.unpaid_since, rp.currency,
       w.balance, w.usage_owed, o.default_billing_type, o.prepaid_grace_nanos,
       c.period, c.calls
FROM billing_appkey k
JOIN billing_developerapp a ON a.id = k.app_id
JOIN billing_billingaccount ba ON ba.id = a.billing_account_id
JOIN accounts_user u ON u.id = ba.user_id
LEFT JOIN billing_apiproduct p ON p.name = %s AND p.id IN (
    SELECT ap.apiproduct_id FROM billing_developerapp_api_products ap
    WHERE ap.developerapp_id = a.id)
LEFT JOIN billing_subscription s ON s.id = (
    SELECT s2.id FROM billing_subscription s2
    WHERE s2.billing_account_id = ba.id AND s2.product_id = p.id
    ORDER BY s2.end_time IS NULL DESC, s2.end_time DESC, s2.start_time DESC
    LIMIT 1)
LEFT JOIN billing_rateplan rp ON rp.id = s.rate_plan_id
LEFT JOIN billing_wallet w ON w.billing_account_id = ba.id AND w.currency = rp.currency
LEFT JOIN billing_organizationsettings o ON o.id = %s
LEFT JOIN billing_usagecounter c ON c.id = (
    SELECT c2.id FROM billing_usagecounter c2
    WHERE c2.subscription_id = s.id AND c2.period >= %s AND c2.period < %s
    ORDER BY c2.period DESC
    LIMIT 1)
WHERE k.key_hash = %s
"""
# Quota counters' periods are "q:" and the window's start: every one sorts between these two.
_QUOTA_PERIODS = ("q:", "q;")


def limits_params(raw: str, product_name: str) -> list[str | int]:
    return [product_name, OrganizationSettings.SINGLETON_ID, *_QUOTA_PERIODS, key_hash(raw)]


def _row_of(values: Sequence[Any] | None) -> _Row | None:
    """The limits read's columns (None: no such key)."""
    if not values or values[0] is None:
        return None
    row = _Row(*values)
    # SQLite hands back text and naive times where PostgreSQL has typed values.
    return dataclasses.replace(
        row,
        subscription=str(uuid.UUID(str(row.subscription))) if row.subscription else None,
        start_time=aware(row.start_time),
        end_time=aware(row.end_time),
        unpaid_since=aware(row.unpaid_since),
    )


def _subscription_reason(row: _Row, now: datetime) -> str:
    """As `Subscription.status`: Ended, Future, Unpaid or in force."""
    if row.end_time is not None and row.end_time <= now:
        return Reason.SUBSCRIPTION_ENDED
    if row.start_time is not None and row.start_time > now:
        return Reason.SUBSCRIPTION_NOT_STARTED
    return Reason.UNPAID if row.unpaid_since else Reason.OK


def _prepaid_floor(row: _Row) -> int | None:
    """As the ledger's floor (`prepaid_floor`), from what the read brought along."""
    default = row.default_billing_type or BillingType.POSTPAID
    if (row.own_billing_type or default) != BillingType.PREPAID:
        return None
    return -(row.grace or 0)


def _quota(row: _Row, now: datetime) -> Quota | None:
    if row.quota is None:
        return None
    window = ApiProduct(
        quota_interval=row.quota_interval or 1, quota_time_unit=str(row.quota_time_unit)
    )
    start, end = quota_window(window, now)
    period = quota_period(start)
    if row.counter_period is not None and row.counter_period > period:
        # A later window has a counter: the product's window was changed since; ask for this one.
        used = (
            UsageCounter.objects.filter(subscription_id=row.subscription_id or 0, period=period)
            .values_list("calls", flat=True)
            .first()
        )
    else:
        used = row.counter_calls if row.counter_period == period else 0
    return Quota(limit=row.quota, used=used or 0, reset_time=end)
