"""Reads of auto-recharge: whether a recharge is due and how much, the guards, the sweep."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Sum
from django.utils import timezone

from billing.billing_accounts.selectors import billing_type_effective
from billing.models import (
    AutoRecharge,
    BillingAccount,
    BillingType,
    LedgerEntry,
    RechargeAttempt,
    TopUp,
    TopUpLimit,
    Wallet,
)
from billing.money import Money, stripe_minimum_charge, stripe_round_up
from billing.top_ups.limits import TopUpRefused, top_up_check, top_up_offer

Attempt = RechargeAttempt.State
RUNAWAY_WINDOW = timedelta(minutes=10)
RUNAWAY_LIMIT = 3  # more successful recharges than this within the window stop auto-recharge
# An attempt still in flight after this long lost its worker; the sweep resumes it.
STALE_IN_FLIGHT = timedelta(minutes=5)


def recharge_amount(recharge: AutoRecharge, balance: int, offer_min: int, offer_max: int) -> int:
    # A minimum or fixed amount saved before the settings knew Stripe's smallest charge would
    # be refused at every recharge (a fixed one silently, by the limits): charge at least that.
    stripe_minimum = stripe_minimum_charge(recharge.currency)
    stripe_floor = stripe_minimum.nanos if stripe_minimum else 0
    if recharge.mode == AutoRecharge.Mode.FIXED:
        # Saved before fixed amounts were checked, KWD 5.123 would fail every time: charge 5.130.
        return max(stripe_round_up(recharge.amount, recharge.currency), stripe_floor)
    # Usage leaves fractions of a cent; Stripe charges whole cents (KWD: 0.010, ISK: whole
    # krónur), so round up to reach the target.
    missing = stripe_round_up(recharge.amount - balance, recharge.currency)
    return min(max(missing, offer_min, stripe_floor), offer_max)


def recharge_due(
    recharge: AutoRecharge, *, balance: int, now: datetime, runaway: Callable[[], bool]
) -> int | None:
    """What this auto-recharge would charge at `balance`, or None when nothing is due: the
    claim's decision, shared with the Adjust balance confirmation's warning (the trust tier's
    limits are checked by each on top). `runaway` is asked where the guard belongs, before the
    limits and the cap: the claim's trips the guard (switch off, alert), the preview's only
    asks whether it would."""
    account = recharge.billing_account
    if (
        not recharge.enabled
        or not account.stripe_payment_method_id
        or (recharge.retry_after and recharge.retry_after > now)
        or billing_type_effective(account=account) != BillingType.PREPAID
        or balance >= recharge.threshold
        or recharge_waits_for_rise(recharge)
        or runaway()
    ):
        return None
    limit = TopUpLimit.objects.filter(currency=recharge.currency).first()
    if limit is None:  # nothing is charged in a currency no longer offered
        return None
    offer = top_up_offer(account=account, currency=recharge.currency)
    amount = recharge_amount(
        recharge, balance, limit.minimum, offer.maximum.nanos if offer else limit.maximum
    )
    if recharge.monthly_cap is not None and (
        recharge_month_total(recharge, now) + amount > recharge.monthly_cap
    ):
        return None
    return amount


def recharge_waits_for_rise(recharge: AutoRecharge) -> bool:
    """One charge per fall below the threshold. A recharge that left the balance below it (a
    fixed amount smaller than the gap) is not repeated every minute by the sweep until the
    runaway guard switches it off: the next waits until the balance has been back at or above
    the threshold, or the developer saves the settings again."""
    if recharge.pk is None:  # settings not saved yet: no recharge to wait after
        return False
    last = (
        recharge.attempts.filter(state=Attempt.SUCCEEDED, finished_at__gte=recharge.updated_at)
        .exclude(stripe_payment_intent_id="")
        .order_by("-finished_at")
        .first()
    )
    if last is None:
        return False
    credit = (
        LedgerEntry.objects.filter(transaction_id=last.stripe_payment_intent_id)
        .values("id", "wallet_id")
        .first()
    )
    if credit is None:
        return False
    risen = LedgerEntry.objects.filter(
        wallet_id=credit["wallet_id"], id__gte=credit["id"], balance_after__gte=recharge.threshold
    )
    return not risen.exists()


def runaway_guard_until(recharge: AutoRecharge, now: datetime) -> datetime | None:
    """While more than RUNAWAY_LIMIT recharges succeeded within RUNAWAY_WINDOW, the runaway
    guard stops the next one: until when that holds, or None."""
    recent = [
        finished
        for finished in recharge.attempts.filter(
            state=Attempt.SUCCEEDED, finished_at__gte=now - RUNAWAY_WINDOW
        )
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)[: RUNAWAY_LIMIT + 1]
        if finished is not None
    ]
    if len(recent) <= RUNAWAY_LIMIT:
        return None
    return recent[RUNAWAY_LIMIT] + RUNAWAY_WINDOW  # when the oldest of them leaves the window


def runaway_minutes() -> int:
    return int(RUNAWAY_WINDOW.total_seconds() // 60)


def recharge_month_total(recharge: AutoRecharge, now: datetime) -> int:
    if recharge.pk is None:
        return 0
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (
        recharge.attempts.filter(
            state__in=[Attempt.SUCCEEDED, Attempt.IN_FLIGHT], created_at__gte=month_start
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )


def auto_recharge_due() -> list[tuple[int, str]]:
    """(account id, currency) of enabled auto-recharges below threshold with nothing in flight,
    or with an attempt in flight for so long that its worker must have died."""
    now = timezone.now()
    below = Wallet.objects.filter(recharge_below__isnull=False, balance__lt=F("recharge_below"))
    busy = set(
        RechargeAttempt.objects.filter(state=Attempt.IN_FLIGHT).values_list(
            "auto_recharge__billing_account_id", "auto_recharge__currency"
        )
    )
    due = set(below.values_list("billing_account_id", "currency")) - busy
    stale = RechargeAttempt.objects.filter(
        state=Attempt.IN_FLIGHT, created_at__lt=now - STALE_IN_FLIGHT
    ).values_list("auto_recharge__billing_account_id", "auto_recharge__currency")
    return sorted(due | set(stale))


@dataclass(frozen=True)
class RechargePreview:
    """The auto-recharge a balance change would set off: the developer's saved card is charged."""

    threshold: Money
    amount: Money  # what the claim would charge with today's settings and limits
    card: str  # e.g. "Visa •••• 4242"


def recharge_preview(*, account: BillingAccount, change: Money) -> RechargePreview | None:
    """What confirming `change` would charge through auto-recharge, or None: the claim's own
    decision (recharge_due) at the balance the change leaves."""
    recharge = (
        AutoRecharge.objects.select_related("billing_account")
        .filter(billing_account=account, currency=change.currency)
        .first()
    )
    if recharge is None:
        return None
    wallet = Wallet.objects.filter(billing_account=account, currency=change.currency).first()
    after = (wallet.balance if wallet else 0) + change.nanos
    now = timezone.now()
    # The runaway guard would switch it off instead of charging.
    amount = recharge_due(
        recharge,
        balance=after,
        now=now,
        runaway=lambda: runaway_guard_until(recharge, now) is not None,
    )
    if amount is None:
        return None
    return RechargePreview(
        threshold=recharge.threshold_money,
        amount=Money(amount, change.currency),
        card=account.card_label,
    )


def recharge_on_save(
    *,
    account: BillingAccount,
    currency: str,
    threshold: Money,
    mode: str,
    amount: Money,
    monthly_cap: Money | None,
) -> RechargePreview | None:
    """What saving these settings, switched on, would charge at once, or None: the claim's
    own decision for the settings as they would stand after the save (which ends a back-off
    and the wait for the balance to rise), within the trust tier's limits."""
    saved = AutoRecharge.objects.filter(billing_account=account, currency=currency).first()
    now = timezone.now()
    candidate = AutoRecharge(
        pk=saved.pk if saved else None,
        billing_account=account,
        currency=currency,
        enabled=True,
        threshold=threshold.nanos,
        mode=mode,
        amount=amount.nanos,
        monthly_cap=monthly_cap.nanos if monthly_cap else None,
        updated_at=now,
    )
    wallet = Wallet.objects.filter(billing_account=account, currency=currency).first()
    due = recharge_due(
        candidate, balance=wallet.balance if wallet else 0, now=now, runaway=lambda: False
    )
    if due is None:
        return None
    try:
        top_up_check(account=account, money=Money(due, currency), source=TopUp.Source.AUTO_RECHARGE)
    except TopUpRefused:
        return None  # the claim would skip it too
    return RechargePreview(
        threshold=threshold, amount=Money(due, currency), card=account.card_label
    )


def recharge_attempt_since(
    *, account: BillingAccount, currency: str, since: datetime
) -> RechargeAttempt | None:
    """The latest recharge attempt of one wallet made at or after `since`."""
    return (
        RechargeAttempt.objects.filter(
            auto_recharge__billing_account=account,
            auto_recharge__currency=currency,
            created_at__gte=since,
        )
        .order_by("-created_at", "-id")
        .first()
    )
