"""What Add credit and auto-recharge may charge: the organisation's limits per currency, the
developer's trust tier, and the wait between two top-ups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q, Sum
from django.utils import timezone

from billing.billing_accounts.selectors import billing_type_effective, organization_settings_get
from billing.exceptions import BillingError
from billing.models import BillingAccount, BillingType, TopUp, TopUpLimit, TrustTier
from billing.money import Money, MoneyError, stripe_amount_check
from billing.payments import stripe_gateway

State = TopUp.State
# A pending top-up counts against the limits while its payment page can be paid, plus a margin
# for a payment that was under way when the page expired.
PENDING_COUNTS_FOR = stripe_gateway.CHECKOUT_LIFETIME + timedelta(minutes=10)
# States in which the top-up's payment was credited to the wallet.
CREDITED = (State.SUCCEEDED, State.DISPUTED, State.REFUNDED)


class TopUpRefused(BillingError):
    """Add credit was refused before any payment; the message names the limit and why."""


@dataclass(frozen=True)
class TopUpOffer:
    """What the Add credit form offers for one currency."""

    currency: str
    minimum: Money
    maximum: Money
    default: Money
    capping_tier: str = ""  # the developer's trust tier, where it caps below the portal's limit


def top_up_offer(*, account: BillingAccount, currency: str) -> TopUpOffer | None:
    limit = TopUpLimit.objects.filter(currency=currency).first()
    if limit is None:
        return None
    maximum, capping_tier = limit.maximum, ""
    tier = TrustTier.objects.filter(level=account.trust_tier, currency=currency).first()
    if tier and tier.max_single_purchase < maximum:
        maximum, capping_tier = tier.max_single_purchase, tier.name
    return TopUpOffer(
        currency,
        limit.minimum_money,
        Money(maximum, currency),
        Money(min(limit.default, maximum), currency),
        capping_tier,
    )


# Longer than opening a payment page can take (stripe_gateway.PAGE_TIMEOUT_SECONDS): a top-up
# still without its page after this lost its request (the worker was killed while asking Stripe).
PAGE_OPENING_LIMIT = timedelta(minutes=1)


def _counting(account: BillingAccount, currency: str, now: object) -> object:
    """Top-ups that use up limits: succeeded ones, pending ones still payable, and pending ones
    whose payment is under way: a bank debit completed on Stripe's page arrives days later. A
    payment page that was never opened cannot be paid (nobody has its address): it counts only
    while its request may still be opening it, not for the page's lifetime."""
    page_never_opened = Q(source=TopUp.Source.CHECKOUT, checkout_url="") & Q(
        created_at__lt=now - PAGE_OPENING_LIMIT  # type: ignore[operator]
    )
    payable = Q(state=State.PENDING, created_at__gte=now - PENDING_COUNTS_FOR) & ~page_never_opened  # type: ignore[operator]
    under_way = Q(state=State.PENDING, stripe_payment_intent_id__isnull=False)
    return TopUp.objects.filter(billing_account=account, currency=currency).filter(
        Q(state__in=CREDITED) | payable | (under_way & Q(payment_set_aside=False))
    )


def top_up_check(
    *, account: BillingAccount, money: Money, source: str = TopUp.Source.CHECKOUT
) -> None:
    """Refuse, with the limit and the reason, a top-up the organisation does not allow."""
    currency = money.currency
    if billing_type_effective(account=account) != BillingType.PREPAID:
        raise TopUpRefused(
            "Your billing type is Postpaid: usage is invoiced monthly, so there is no prepaid "
            "balance to add credit to."
        )
    limit = TopUpLimit.objects.filter(currency=currency).first()
    if limit is None:
        raise TopUpRefused(f"Adding credit in {currency} is not offered.")
    if money.nanos < limit.minimum:
        raise TopUpRefused(f"The minimum top-up is {limit.minimum_money}.")
    try:  # a minimum saved before the settings page knew Stripe's: Stripe would refuse it
        stripe_amount_check(money)
    except MoneyError as exc:
        raise TopUpRefused(str(exc)) from exc
    now = timezone.now()
    tier = TrustTier.objects.filter(level=account.trust_tier, currency=currency).first()
    # Name the limit that binds: the tier's when it is the lower one, as the form's hint does.
    if tier and money.nanos > tier.max_single_purchase < limit.maximum:
        raise TopUpRefused(
            f"Your trust tier ({tier.name}) allows at most "
            f"{tier.max_single_purchase_money} in one top-up."
        )
    if money.nanos > limit.maximum:
        raise TopUpRefused(f"The maximum for one top-up is {limit.maximum_money}.")
    if tier:
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        used = (
            _counting(account, currency, now)
            .filter(created_at__gte=month_start)  # type: ignore[attr-defined]
            .aggregate(total=Sum("amount"))["total"]
            or 0
        )
        if used + money.nanos > tier.max_monthly_total:
            left = max(0, tier.max_monthly_total - used)
            raise TopUpRefused(
                f"Your trust tier ({tier.name}) allows "
                f"{tier.max_monthly_total_money} of top-ups a month; "
                f"{Money(used, currency)} is used this month, so at most "
                f"{Money(left, currency)} more."
            )
    if source == TopUp.Source.CHECKOUT:
        _check_wait(account, currency, now)


def _check_wait(account: BillingAccount, currency: str, now: object) -> None:
    wait = organization_settings_get().top_up_wait_seconds
    if not wait:
        return
    since = now - timedelta(seconds=wait)  # type: ignore[operator]
    last = (
        _counting(account, currency, now)
        .filter(source=TopUp.Source.CHECKOUT)  # type: ignore[attr-defined]
        .filter(Q(created_at__gte=since) | Q(succeeded_at__gte=since))
        .order_by("-created_at")
        .first()
    )
    if last is None:
        return
    ready = max(last.created_at, last.succeeded_at or last.created_at) + timedelta(seconds=wait)
    seconds = int((ready - now).total_seconds()) + 1
    unpaid = (
        " Your last payment page is not paid yet: finish or cancel it (see above)."
        if last.state == State.PENDING
        else ""
    )
    raise TopUpRefused(
        f"Please wait {seconds // 60} min {seconds % 60} s before adding credit in {currency} "
        f"again: the organisation allows one top-up every {_duration(wait)}.{unpaid}"
    )


def _duration(seconds: int) -> str:
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} seconds"
