"""The gateway's question before a call: may this key call this product now? A read from the
database as of now: it never changes money, and a revoked key is refused at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from billing.developer_apps.keys import key_hash
from billing.models import (
    AppKey,
    BillingType,
    DeveloperApp,
    OrganizationSettings,
    Subscription,
    UsageCounter,
    Wallet,
)
from billing.money import Money
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
    app's products, the subscription, the fee, the quota, then the prepaid balance. Three reads
    at most (the gateway asks before every call): the key with its app's product, the
    subscription with its wallet and the organisation's floor, and the quota's counter."""
    now = now or timezone.now()
    key = _key_with_product(consumer_key, product_name)
    if key is None:
        return LimitsAnswer(Reason.INVALID_KEY)
    developer = key["app__billing_account__user__email"]
    if key["status"] != AppKey.Status.APPROVED:
        return LimitsAnswer(Reason.KEY_REVOKED, developer)
    if key["product_id"] is None:
        return LimitsAnswer(Reason.PRODUCT_NOT_IN_APP, developer)
    subscription = _latest_subscription(key["app__billing_account_id"], key["product_id"])
    if subscription is None:
        return LimitsAnswer(Reason.NO_SUBSCRIPTION, developer)
    status = subscription.status(now)
    reason = {
        "Future": Reason.SUBSCRIPTION_NOT_STARTED,
        "Ended": Reason.SUBSCRIPTION_ENDED,
        "Unpaid": Reason.UNPAID,
    }.get(status, Reason.OK)
    currency = subscription.rate_plan.currency
    balance = Money(getattr(subscription, "balance", None) or 0, currency)
    quota = _quota(subscription, now)
    answer = LimitsAnswer(reason, developer, str(subscription.public_id), balance, quota)
    if reason != Reason.OK:
        return answer
    if quota is not None and quota.used >= quota.limit:
        return _with(answer, Reason.QUOTA_EXCEEDED)
    floor = _prepaid_floor(key["app__billing_account__billing_type"], subscription)
    if floor is not None and balance.nanos <= floor:
        return _with(answer, Reason.INSUFFICIENT_BALANCE)
    return answer


def _with(answer: LimitsAnswer, reason: str) -> LimitsAnswer:
    return LimitsAnswer(reason, answer.developer, answer.subscription, answer.balance, answer.quota)


def _key_with_product(raw: str, product_name: str) -> dict[str, Any] | None:
    """The key's status and owner, and the product's id if the key's app may call it."""
    in_app = DeveloperApp.api_products.through.objects.filter(
        developerapp_id=OuterRef("app_id"), apiproduct__name=product_name
    ).values("apiproduct_id")[:1]
    return (
        AppKey.objects.filter(key_hash=key_hash(raw))
        .annotate(product_id=Subquery(in_app))
        .values(
            "status",
            "product_id",
            "app__billing_account_id",
            "app__billing_account__billing_type",
            "app__billing_account__user__email",
        )
        .first()
    )


def _latest_subscription(account_id: int, product_id: int) -> Subscription | None:
    """The open subscription if there is one, else the one that ended last; with the balance
    of its currency's wallet and the organisation's default billing type and grace."""
    wallet = Wallet.objects.filter(
        billing_account_id=account_id, currency=OuterRef("rate_plan__currency")
    ).values("balance")[:1]
    org = OrganizationSettings.objects.filter(pk=OrganizationSettings.SINGLETON_ID)
    return (
        Subscription.objects.select_related("rate_plan", "product")
        .filter(billing_account_id=account_id, product_id=product_id)
        .annotate(
            balance=Subquery(wallet),
            default_billing_type=Subquery(org.values("default_billing_type")[:1]),
            grace=Subquery(org.values("prepaid_grace_nanos")[:1]),
        )
        .order_by(F("end_time").desc(nulls_first=True), "-start_time")  # the open one first
        .first()
    )


def _prepaid_floor(own_billing_type: str, subscription: Subscription) -> int | None:
    """As the ledger's floor (`prepaid_floor`), from what the reads above brought along."""
    default = getattr(subscription, "default_billing_type", None) or BillingType.POSTPAID
    if (own_billing_type or default) != BillingType.PREPAID:
        return None
    return -(getattr(subscription, "grace", None) or 0)


def _quota(subscription: Subscription, now: datetime) -> Quota | None:
    product = subscription.product
    if product.quota is None:
        return None
    start, end = quota_window(product, now)
    used = (
        UsageCounter.objects.filter(subscription=subscription, period=quota_period(start))
        .values_list("calls", flat=True)
        .first()
    )
    return Quota(limit=product.quota, used=used or 0, reset_time=end)
