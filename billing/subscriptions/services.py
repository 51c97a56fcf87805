"""Writes of subscriptions: purchase, cancel (expire), and charging the fees that fall due.

Every fee is a ledger debit under its own transaction id (`purchase:<id>:setup`,
`fee:<id>:<YYYY-MM>`), so however often a purchase is retried or the fee run runs, each fee is
charged at most once. A prepaid wallet pays only what it holds (plus the organisation's grace):
a purchase it cannot pay is refused with the shortfall; a recurring fee it cannot pay leaves the
subscription unpaid until money comes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists
from django.utils import timezone

from billing.audit import audit_log
from billing.catalog.selectors import rate_plan_in_force
from billing.exceptions import AlreadyExists, BillingError, InsufficientFunds, NotFound
from billing.ledger.entries import Actor, Kind
from billing.ledger.services import wallet_debit
from billing.locks import organization_settings_hold, purchases_lock, subscription_lock
from billing.models import (
    ApiProduct,
    BillingAccount,
    RatePlan,
    SentNotification,
    Subscription,
    Wallet,
)
from billing.money import Money, stripe_round_up
from billing.notifications.once import notification_owe
from billing.subscriptions.fees import FeeCharge, Quote, fees_due, purchase_quote
from billing.subscriptions.selectors import (
    purchase_shortfall,
    subscriptions_fee_due,
    subscriptions_unpaid,
)

# A start a little in the past is "now" (the form was filled a moment ago); more is refused.
START_LEEWAY = timedelta(minutes=5)


class PurchaseRefused(InsufficientFunds):
    """A prepaid wallet cannot pay the purchase: `shortfall` is what to add, rounded up to an
    amount a card can pay."""

    def __init__(self, shortfall: Money) -> None:
        self.shortfall = shortfall
        super().__init__(
            "You have insufficient funds to purchase this plan. "
            f"Add at least {shortfall} to your balance."
        )


@dataclass(frozen=True)
class Purchase:
    subscription: Subscription
    quote: Quote
    replayed: bool  # the idempotency key had bought it already: nothing was charged now


def subscription_purchase(
    *,
    account: BillingAccount,
    product: ApiProduct,
    actor: Actor,
    start_time: datetime | None = None,
    idempotency_key: str = "",
) -> Purchase:
    """Buy `product` on the plan in force at the start (now by default): one subscription, and,
    when it starts now, the setup fee and first recurring fee charged in the same transaction.
    A future start is funds-checked now and charged when it starts."""
    now = timezone.now()
    start = _start_check(start_time, now)
    _idempotency_key_check(idempotency_key)
    try:
        with transaction.atomic():
            organization_settings_hold()
            purchases_lock(account=account)
            replay = _replay(account, product, idempotency_key)
            if replay is not None:
                return replay
            plan = _plan_for(product, start)
            _refuse_second_open(account, product)
            quote = purchase_quote(plan, start)
            subscription = _subscription_create(account, plan, start, idempotency_key)
            if start <= now:
                _charge(subscription, plan, as_of=now, actor=actor, refuse_shortfall=True)
            else:
                _funds_check(account, quote.total)
    except InsufficientFunds:
        raise PurchaseRefused(_shortfall(account, purchase_quote(plan, start).total)) from None
    audit_log(
        actor=actor.user,
        action="subscription.purchase",
        target_user=account.user,
        subscription=str(subscription.public_id),
        product=product.name,
        plan=str(plan.public_id),
        charged=str(quote.total) if start <= now else "at start",
    )
    return Purchase(subscription, quote, replayed=False)


def _start_check(start_time: datetime | None, now: datetime) -> datetime:
    if start_time is None:
        return now
    if timezone.is_naive(start_time):
        raise BillingError("startTime needs a time zone (epoch milliseconds are UTC).")
    if start_time < now - START_LEEWAY:
        raise BillingError(
            "startTime is in the past: leave it out to start now, or give a later time."
        )
    return max(start_time, now)


def _idempotency_key_check(key: str) -> None:
    if len(key) > 255 or not key.isprintable():
        raise BillingError("An idempotency key is at most 255 printable characters.")


def _replay(account: BillingAccount, product: ApiProduct, key: str) -> Purchase | None:
    if not key:
        return None
    bought = (
        Subscription.objects.select_related("rate_plan__product", "product")
        .filter(billing_account=account, idempotency_key=key)
        .first()
    )
    if bought is None:
        return None
    if bought.product_id != product.pk:
        raise AlreadyExists(
            "This idempotency key was used for another purchase; use a new key for a new one."
        )
    return Purchase(bought, purchase_quote(bought.rate_plan, bought.start_time), replayed=True)


def _plan_for(product: ApiProduct, start: datetime) -> RatePlan:
    plan = rate_plan_in_force(product=product, at=start)
    if plan is None:
        raise NotFound(f"{product.display_name} has no published rate plan to buy then.")
    return plan


def _refuse_second_open(account: BillingAccount, product: ApiProduct) -> None:
    if Subscription.objects.filter(
        billing_account=account, product=product, end_time__isnull=True
    ).exists():
        raise AlreadyExists(
            f"You have already purchased {product.display_name}: it is active or starts later."
        )


def _subscription_create(
    account: BillingAccount, plan: RatePlan, start: datetime, key: str
) -> Subscription:
    try:
        with transaction.atomic():
            return Subscription.objects.create(
                billing_account=account,
                product=plan.product,
                rate_plan=plan,
                start_time=start,
                idempotency_key=key,
                next_charge_at=start,
            )
    except IntegrityError:  # the purchases lock makes this unreachable; the index is the proof
        raise AlreadyExists(f"You have already purchased {plan.product.display_name}.") from None


def _funds_check(account: BillingAccount, total: Money) -> None:
    """A future start is not charged now, but must be payable now (the Drupal module let such
    purchases through: its issue #158)."""
    if purchase_shortfall(account=account, total=total) is not None:
        raise InsufficientFunds("Not enough for the first fees.")


def _shortfall(account: BillingAccount, total: Money) -> Money:
    """What to add, as the purchase page said it; at least the smallest amount a card pays, if
    the money came in between the refusal and this read."""
    smallest = Money(stripe_round_up(1, total.currency), total.currency)
    return purchase_shortfall(account=account, total=total) or smallest


# ---- Fees that fall due ----


@dataclass(frozen=True)
class FeeRun:
    charged: list[FeeCharge]
    unpaid: FeeCharge | None  # the fee the wallet could not pay (later ones wait behind it)


def _charge(
    subscription: Subscription,
    plan: RatePlan,
    *,
    as_of: datetime,
    actor: Actor,
    refuse_shortfall: bool = False,
) -> FeeRun:
    """Debit every fee due by `as_of` that is not charged yet, oldest first, inside the
    caller's transaction (holding the subscription, or having just made it). Stops at the first
    fee a prepaid wallet cannot pay and marks the subscription unpaid; a purchase
    (`refuse_shortfall`) is refused whole instead."""
    due, next_at = fees_due(
        subscription_id=str(subscription.public_id),
        plan=plan,
        start=subscription.start_time,
        end=subscription.end_time,
        as_of=as_of,
    )
    charged: list[FeeCharge] = []
    for fee in due:
        try:
            result = wallet_debit(
                account=subscription.billing_account,
                money=fee.money,
                transaction_id=fee.transaction_id,
                actor=actor,
                kind=Kind.FEE,
                memo=fee.memo,
            )
        except InsufficientFunds:
            if refuse_shortfall:
                raise
            _mark_unpaid(subscription, fee, as_of)
            return FeeRun(charged, fee)
        if not result.replayed:
            charged.append(fee)
    Subscription.objects.filter(pk=subscription.pk).update(
        next_charge_at=next_at, unpaid_since=None, unpaid_period="", updated_at=timezone.now()
    )
    if subscription.unpaid_since is not None:
        _owes_fees_refresh(subscription.billing_account_id, plan.currency)
    subscription.next_charge_at, subscription.unpaid_since, subscription.unpaid_period = (
        next_at,
        None,
        "",
    )
    return FeeRun(charged, None)


def _mark_unpaid(subscription: Subscription, fee: FeeCharge, as_of: datetime) -> None:
    """The fee stays owed: the limits check refuses calls, the developer is emailed once per
    fee, and the next credit pays it."""
    since = subscription.unpaid_since or as_of
    Subscription.objects.filter(pk=subscription.pk).update(
        unpaid_since=since, unpaid_period=fee.period, updated_at=timezone.now()
    )
    subscription.unpaid_since, subscription.unpaid_period = since, fee.period
    Wallet.objects.filter(
        billing_account_id=subscription.billing_account_id, currency=fee.money.currency
    ).update(owes_fees=True)  # so that the next credit here asks for it (billing/ledger/entries)
    notification_owe(
        key=f"fee-unpaid:{fee.transaction_id}",
        kind=SentNotification.Kind.FEE_UNPAID,
        reference=fee.transaction_id,
    )


def subscription_fees_charge(*, subscription_id: int, as_of: datetime | None = None) -> FeeRun:
    """Charge what one subscription owes by `as_of` (now by default), once, whoever else runs
    at the same time: the fee run, the reaction to a credit, a second worker."""
    as_of = as_of or timezone.now()
    with transaction.atomic():
        subscription = subscription_lock(pk=subscription_id)
        if subscription is None or subscription.next_charge_at is None:
            return FeeRun([], None)
        if subscription.next_charge_at > as_of:  # an unpaid fee keeps it due
            return FeeRun([], None)  # another run charged it meanwhile
        return _charge(subscription, subscription.rate_plan, as_of=as_of, actor=Actor.system())


def subscription_expire(
    *, subscription: Subscription, actor: Actor, reason: str = "cancelled"
) -> Subscription:
    """End it now (Apigee X `:expire`): calls stop, no further fee is charged, and the fee
    already paid is not refunded. Expiring an ended subscription changes nothing."""
    now = timezone.now()
    with transaction.atomic():
        locked = subscription_lock(pk=subscription.pk)
        if locked is None:
            raise NotFound("No such subscription.")
        if locked.end_time is not None:
            return locked
        Subscription.objects.filter(pk=locked.pk).update(
            end_time=now, next_charge_at=None, updated_at=now
        )
        locked.end_time, locked.next_charge_at = now, None
    audit_log(
        actor=actor.user,
        action="subscription.expire",
        target_user=locked.billing_account.user,
        subscription=str(locked.public_id),
        product=locked.product.name,
        reason=reason,
    )
    return locked


@dataclass(frozen=True)
class FeeRunSummary:
    subscriptions: int  # looked at
    charged: int  # fees debited by this run
    unpaid: list[str]  # transaction ids of the fees found unpaid, to email about


def recurring_fees_charge(*, as_of: datetime | None = None) -> FeeRunSummary:
    """The fee run (`charge_recurring_fees`): every subscription with a fee due by `as_of` (now
    by default), each in its own transaction. Running it again, or twice at once, charges
    nothing more: each subscription is charged under its row lock, each fee under its id."""
    as_of = as_of or timezone.now()
    ids = subscriptions_fee_due(as_of=as_of)
    charged, unpaid = 0, []
    for pk in ids:
        run = subscription_fees_charge(subscription_id=pk, as_of=as_of)
        charged += len(run.charged)
        if run.unpaid is not None:
            unpaid.append(run.unpaid.transaction_id)
    return FeeRunSummary(len(ids), charged, unpaid)


def unpaid_fees_settle(*, account_id: int, currency: str) -> int:
    """Money came in: pay the account's unpaid fees in that currency, oldest first. Returns
    how many fees were charged."""
    charged = 0
    for pk in subscriptions_unpaid(account_id=account_id, currency=currency):
        charged += len(subscription_fees_charge(subscription_id=pk).charged)
    _owes_fees_refresh(account_id, currency)
    return charged


def _owes_fees_refresh(account_id: int, currency: str) -> None:
    """The wallet's flag, as its subscriptions say it now (two settled at once may each have
    seen the other still unpaid; the next settlement puts that right)."""
    unpaid = Subscription.objects.filter(
        billing_account_id=account_id,
        unpaid_since__isnull=False,
        end_time__isnull=True,
        rate_plan__currency=currency,
    )
    Wallet.objects.filter(billing_account_id=account_id, currency=currency).update(
        owes_fees=Exists(unpaid)
    )
