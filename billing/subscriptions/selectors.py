"""Reads of subscriptions: a developer's plans, what each has paid, who owes a fee."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from billing.ledger.entries import prepaid_floor
from billing.models import BillingAccount, LedgerEntry, Subscription, Wallet
from billing.money import Money, stripe_round_up


def wallet_balance_nanos(account: BillingAccount, currency: str) -> int:
    balance = (
        Wallet.objects.filter(billing_account=account, currency=currency)
        .values_list("balance", flat=True)
        .first()
    )
    return balance or 0


def subscription_get(*, account: BillingAccount, public_id: str) -> Subscription | None:
    return (
        Subscription.objects.select_related("product", "rate_plan__product")
        .filter(billing_account=account, public_id=public_id)
        .first()
    )


def subscriptions_of(*, account: BillingAccount) -> QuerySet[Subscription]:
    return Subscription.objects.filter(billing_account=account).select_related(
        "product", "rate_plan__product"
    )


def products_bought(*, account: BillingAccount) -> set[int]:
    """Ids of the products the account has open (Active, Future or Unpaid) subscriptions to."""
    return set(
        Subscription.objects.filter(billing_account=account, end_time__isnull=True).values_list(
            "product_id", flat=True
        )
    )


@dataclass(frozen=True)
class PlanRow:
    """A purchased plan as the pages show it."""

    subscription: Subscription
    status: str
    fees_paid: Money

    @property
    def is_open(self) -> bool:
        return self.status in ("Active", "Future", "Unpaid")


def purchased_plans(*, account: BillingAccount, now: datetime | None = None) -> list[PlanRow]:
    """Every subscription of the account, newest first, with its status and the fees it has
    paid: two queries however many plans and fees."""
    now = now or timezone.now()
    subscriptions = list(subscriptions_of(account=account).order_by("-start_time", "-id"))
    paid: dict[str, int] = defaultdict(int)
    fees = LedgerEntry.objects.filter(
        wallet__billing_account=account, kind=LedgerEntry.Kind.FEE
    ).filter(Q(transaction_id__startswith="purchase:") | Q(transaction_id__startswith="fee:"))
    for transaction_id, amount in fees.values_list("transaction_id", "amount"):
        paid[transaction_id.split(":")[1]] -= amount
    return [
        PlanRow(
            subscription=s,
            status=s.status(now),
            fees_paid=Money(paid[str(s.public_id)], s.rate_plan.currency),
        )
        for s in subscriptions
    ]


def subscriptions_fee_due(*, as_of: datetime) -> list[int]:
    """Ids of the subscriptions with a fee due by `as_of`, or an unpaid one: the fee run's
    work list, read through a partial index."""
    return list(
        Subscription.objects.filter(next_charge_at__lte=as_of)
        .order_by("next_charge_at", "id")
        .values_list("pk", flat=True)
    )


def subscriptions_unpaid(*, account_id: int, currency: str) -> list[int]:
    """The account's subscriptions waiting for money in `currency` to pay a fee."""
    return list(
        Subscription.objects.filter(
            billing_account_id=account_id,
            unpaid_since__isnull=False,
            end_time__isnull=True,
            rate_plan__currency=currency,
        ).values_list("pk", flat=True)
    )


@dataclass(frozen=True)
class PlanStatus:
    """A purchased plan and its status, for the short lists (home page, My account)."""

    subscription: Subscription
    status: str


def plans_open(
    *, account: BillingAccount, limit: int = 5, now: datetime | None = None
) -> list[PlanStatus]:
    """The account's open plans (Active, Future, Unpaid), soonest start first, at most
    `limit`: one query, whatever the account bought over the years."""
    now = now or timezone.now()
    subscriptions = subscriptions_of(account=account).filter(end_time__isnull=True)
    return [
        PlanStatus(s, s.status(now)) for s in subscriptions.order_by("start_time", "id")[:limit]
    ]


def subscriptions_unpaid_of(*, user_id: int) -> list[Subscription]:
    """The user's open subscriptions with a fee unpaid, for the banner on every page: one
    query, through the partial index of unpaid subscriptions."""
    return list(
        Subscription.objects.filter(
            billing_account__user_id=user_id, unpaid_since__isnull=False, end_time__isnull=True
        )
        .select_related("product", "rate_plan")
        .order_by("unpaid_since", "id")
    )


def purchase_shortfall(*, account: BillingAccount, total: Money) -> Money | None:
    """What a prepaid wallet lacks to pay `total` now (plus the organisation's grace), rounded
    up to what a card can pay; None when it can pay, or when the account is postpaid. The
    purchase page says it before the developer confirms; the purchase itself decides (and
    refuses with the same amount)."""
    floor = prepaid_floor(account, total.currency)
    if floor is None:
        return None
    missing = total.nanos - (wallet_balance_nanos(account, total.currency) - floor)
    if missing <= 0:
        return None
    return Money(stripe_round_up(missing, total.currency), total.currency)
