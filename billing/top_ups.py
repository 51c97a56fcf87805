"""Adding credit with a card: limits, the top-up record, and what Stripe's confirmations do.

Crediting happens only here, in `top_up_succeed`, with the PaymentIntent id as the ledger
transaction id: however often and in whatever order Stripe reports a payment, it credits once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import mail_admins, send_mail
from django.db import transaction
from django.db.models import Q, Sum
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from billing import stripe_gateway
from billing.exceptions import BillingError
from billing.ledger import Actor, ledger_apply, wallet_credit
from billing.models import (
    BillingAccount,
    BillingType,
    LedgerEntry,
    TopUp,
    TopUpLimit,
    TrustTier,
    Wallet,
)
from billing.money import Money, MoneyError, money_format, money_from_stripe, stripe_amount_check
from billing.selectors import billing_type_effective, organization_settings_get

logger = logging.getLogger(__name__)
T = TypeVar("T")
State = TopUp.State
# A pending top-up counts against the limits while its payment page can be paid, plus a margin
# for a payment that was under way when the page expired.
PENDING_COUNTS_FOR = stripe_gateway.CHECKOUT_LIFETIME + timedelta(minutes=10)


CREDITED = (State.SUCCEEDED, State.DISPUTED, State.REFUNDED)


class TopUpRefused(BillingError):
    """Add credit was refused before any payment; the message names the limit and why."""


class TopUpNotCancelled(BillingError):
    """The payment page could not be closed (it was paid, or Stripe did not answer)."""


@dataclass(frozen=True)
class TopUpOffer:
    """What the Add credit form offers for one currency."""

    currency: str
    minimum: Money
    maximum: Money
    default: Money


def top_up_offer(*, account: BillingAccount, currency: str) -> TopUpOffer | None:
    limit = TopUpLimit.objects.filter(currency=currency).first()
    if limit is None:
        return None
    maximum = limit.maximum
    tier = TrustTier.objects.filter(level=account.trust_tier, currency=currency).first()
    if tier:
        maximum = min(maximum, tier.max_single_purchase)
    return TopUpOffer(
        currency,
        Money(limit.minimum, currency),
        Money(maximum, currency),
        Money(min(limit.default, maximum), currency),
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
        raise TopUpRefused(f"The minimum top-up is {money_format(Money(limit.minimum, currency))}.")
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
            f"{money_format(Money(tier.max_single_purchase, currency))} in one top-up."
        )
    if money.nanos > limit.maximum:
        raise TopUpRefused(
            f"The maximum for one top-up is {money_format(Money(limit.maximum, currency))}."
        )
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
                f"{money_format(Money(tier.max_monthly_total, currency))} of top-ups a month; "
                f"{money_format(Money(used, currency))} is used this month, so at most "
                f"{money_format(Money(left, currency))} more."
            )
    if source == TopUp.Source.CHECKOUT:
        _check_wait(account, currency, now)


def top_up_open(*, account: BillingAccount, currency: str) -> TopUp | None:
    """The developer's latest payment page in this currency that can still be paid."""
    since = timezone.now() - stripe_gateway.CHECKOUT_LIFETIME
    return (
        TopUp.objects.filter(
            billing_account=account,
            currency=currency,
            state=State.PENDING,
            created_at__gte=since,
            stripe_payment_intent_id__isnull=True,  # paid, waiting for its confirmation
        )
        .exclude(checkout_url="")
        .order_by("-created_at")
        .first()
    )


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


def top_up_limits_lock(*, account: BillingAccount) -> None:
    """Inside a transaction, before top_up_check and recording the top-up: Add credit and the
    auto-recharge claim take turns per account, so that neither misses the other's top-up in
    the wait or the trust tier's monthly total.

    NO KEY UPDATE: debits, which read the account FOR KEY SHARE, are not held up. What the
    checks read of the account is read again under the lock: a billing type or trust tier
    changed while this waited applies, not the one read before.
    """
    locked = (
        BillingAccount.objects.select_for_update(no_key=True)
        .filter(pk=account.pk)
        .values("billing_type", "trust_tier")
        .first()
    )
    if locked is not None:
        account.billing_type, account.trust_tier = locked["billing_type"], locked["trust_tier"]


def top_up_start(*, account: BillingAccount, money: Money, base_url: str) -> TopUp:
    """Check the limits, record a pending top-up and open a payment page for it.

    The checks and the insert share a lock on the billing account, so two tabs cannot both
    pass the wait or the monthly cap. Stripe is called after the commit.
    """
    with transaction.atomic():
        top_up_limits_lock(account=account)
        top_up_check(account=account, money=money)
        top_up = TopUp.objects.create(
            billing_account=account, currency=money.currency, amount=money.nanos
        )
    status_url = base_url + reverse("top_up_status", args=[top_up.public_id])
    cancel_url = base_url + reverse("top_up_cancel", args=[top_up.public_id])
    if not stripe_gateway.stripe_enabled():
        session_id = f"cs_offline_{top_up.public_id.hex}"
        url = base_url + reverse("test_payment", args=[top_up.public_id])
    else:
        try:
            session_id, url = stripe_customer_call(
                account,
                lambda customer_id: stripe_gateway.checkout_session_create(
                    top_up=top_up,
                    customer_id=customer_id,
                    success_url=status_url,
                    cancel_url=cancel_url,
                ),
            )
        except stripe.StripeError as exc:
            logger.warning("Checkout Session for top-up %s failed: %s", top_up.public_id, exc)
            _transition(
                top_up, State.FAILED, failure_reason="The payment page could not be opened."
            )
            raise TopUpRefused(
                "The payment page could not be opened. Nothing was charged; try again in a minute."
            ) from exc
    TopUp.objects.filter(pk=top_up.pk).update(
        stripe_checkout_session_id=session_id, checkout_url=url
    )
    top_up.stripe_checkout_session_id, top_up.checkout_url = session_id, url
    return top_up


def stripe_customer_ensure(account: BillingAccount, *, for_page: bool = False) -> str:
    """One Stripe customer per billing account, created on first payment. `for_page`: a
    developer's page waits for it (stripe_gateway.PAGE_TIMEOUT_SECONDS)."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer_id = stripe_gateway.customer_create(account=account, for_page=for_page)
    # Compare-and-set: if another request stored one meanwhile, keep the first.
    BillingAccount.objects.filter(pk=account.pk, stripe_customer_id="").update(
        stripe_customer_id=customer_id
    )
    account.refresh_from_db(fields=["stripe_customer_id"])
    return account.stripe_customer_id


def stripe_customer_call(account: BillingAccount, call: Callable[[str], T]) -> T:
    """Run a page's Stripe call for the account's customer. A customer Stripe no longer knows
    (deleted in its dashboard, or made with test keys before the switch to live ones) refused
    every payment page for good: it is replaced once and the call made again."""
    customer_id = stripe_customer_ensure(account, for_page=True)
    try:
        return call(customer_id)
    except stripe.InvalidRequestError as exc:
        if not stripe_gateway.customer_missing(exc):
            raise
        logger.warning("Stripe no longer knows customer %s of account %s", customer_id, account.pk)
        return call(_stripe_customer_replace(account, missing=customer_id))


def _stripe_customer_replace(account: BillingAccount, *, missing: str) -> str:
    replacement = stripe_gateway.customer_create(account=account, for_page=True)
    # Compare-and-set: of two pages replacing at once, both use the customer stored first. The
    # saved card belonged to the lost customer: Stripe would refuse it for the new one, so
    # auto-recharge would fail and switch off. The developer saves a card again.
    BillingAccount.objects.filter(pk=account.pk, stripe_customer_id=missing).update(
        stripe_customer_id=replacement, stripe_payment_method_id="", card_brand="", card_last4=""
    )
    account.refresh_from_db(fields=["stripe_customer_id"])
    return account.stripe_customer_id


def _transition(top_up: TopUp, new: str, **fields: object) -> bool:
    """Compare-and-set the state along TopUp.TRANSITIONS; False if it was not allowed."""
    old = TopUp.objects.values_list("state", flat=True).get(pk=top_up.pk)
    if new not in TopUp.TRANSITIONS[old]:
        return False
    changed = TopUp.objects.filter(pk=top_up.pk, state=old).update(
        state=new, updated_at=timezone.now(), **fields
    )
    if changed:
        top_up.state = new
    return bool(changed)


def top_up_cancel(*, top_up: TopUp) -> bool:
    """Cancel a pending top-up, closing its payment page first: a cancelled top-up stops
    counting against the monthly cap and the wait, so its page must not stay payable.
    False if there was nothing to cancel; TopUpNotCancelled if the page could not be closed."""
    if top_up.state != State.PENDING:
        return False
    session_id = _stripe_page(top_up)
    if session_id:
        try:
            status = stripe_gateway.checkout_session_close(session_id)
        except stripe.StripeError as exc:
            logger.warning("Closing Checkout for top-up %s failed: %s", top_up.public_id, exc)
            raise TopUpNotCancelled(
                "Stripe could not be reached to close the payment page, so the top-up is "
                "not cancelled yet. Try again in a minute."
            ) from exc
        if status == "complete":
            raise TopUpNotCancelled(
                "This top-up was already paid on the payment page, so it cannot be cancelled. "
                "The credit appears on your balance once Stripe confirms it."
            )
        if status != "expired":
            raise TopUpNotCancelled("The payment page is still open; try again in a minute.")
        return _transition(top_up, State.CANCELED, failure_reason=CANCELLED)
    return _cancel_unless_paid_offline(top_up)


CANCELLED = "Cancelled on the payment page."


def _cancel_unless_paid_offline(top_up: TopUp) -> bool:
    """Offline, Pay on the test page links the PaymentIntent (top_up_pay_offline): one
    conditional UPDATE each, so of a Pay and a cancel at the same moment exactly one wins."""
    cancelled = TopUp.objects.filter(
        pk=top_up.pk, state=State.PENDING, stripe_payment_intent_id__isnull=True
    ).update(state=State.CANCELED, failure_reason=CANCELLED, updated_at=timezone.now())
    if cancelled:
        top_up.state = State.CANCELED
        return True
    if TopUp.objects.filter(pk=top_up.pk, state=State.PENDING).exists():
        raise TopUpNotCancelled(
            "This top-up was already paid on the test payment page, so it cannot be cancelled. "
            "The credit appears on your balance in a moment."
        )
    return False


def top_up_pay_offline(*, top_up: TopUp, payment_intent_id: str) -> bool:
    """Pay pressed on the offline test page: False if the top-up was cancelled (or finished)
    meanwhile, so that no payment event is sent for it."""
    return bool(
        TopUp.objects.filter(pk=top_up.pk, state=State.PENDING)
        .filter(
            Q(stripe_payment_intent_id__isnull=True)
            | Q(stripe_payment_intent_id=payment_intent_id)  # a second click on Pay
        )
        .update(stripe_payment_intent_id=payment_intent_id)
    )


def _stripe_page(top_up: TopUp) -> str | None:
    """The top-up's Checkout Session on Stripe, if it has one (not the offline test page)."""
    session_id = top_up.stripe_checkout_session_id or ""
    on_stripe = session_id.startswith("cs_") and not session_id.startswith("cs_offline_")
    return session_id if on_stripe and stripe_gateway.stripe_enabled() else None


def top_up_expire(*, top_up: TopUp) -> bool:
    """The payment page expired unpaid (Stripe's event, or the offline page after
    CHECKOUT_LIFETIME). Only a pending top-up changes."""
    return _transition(
        top_up, State.CANCELED, failure_reason="The payment page expired before payment."
    )


def top_up_expire_stale_offline(*, top_up: TopUp) -> bool:
    """The offline test-payment page expires after the same lifetime as Stripe's."""
    if top_up.created_at > timezone.now() - stripe_gateway.CHECKOUT_LIFETIME:
        return False
    return top_up_expire(top_up=top_up)


def top_up_for_stripe(
    *, metadata: dict | None, payment_intent_id: str | None = None, session_id: str | None = None
) -> TopUp | None:
    """Find and lock our top-up from what a Stripe object carries: our id in metadata, or
    Stripe's ids. Call inside a transaction; the services below expect the row locked, so that
    concurrent events about one payment take turns."""
    top_up_id = (metadata or {}).get("top_up_id")
    rows = TopUp.objects.select_for_update(of=("self",)).select_related("billing_account")
    query = rows.none()
    if top_up_id:
        query = rows.filter(public_id=top_up_id)
    elif payment_intent_id:
        query = rows.filter(stripe_payment_intent_id=payment_intent_id)
    elif session_id:
        query = rows.filter(stripe_checkout_session_id=session_id)
    try:
        return query.first()
    except (ValueError, ValidationError):  # a malformed id in metadata is "not ours"
        return None


def top_up_lock(*, top_up_id: int) -> TopUp:
    return (
        TopUp.objects.select_for_update(of=("self",))
        .select_related("billing_account")
        .get(pk=top_up_id)
    )


def top_up_succeed(*, top_up: TopUp, payment_intent_id: str, amount: int, currency: str) -> bool:
    """Stripe says the payment succeeded: credit once, if amount and currency match.

    `top_up` is locked by the caller's transaction (top_up_for_stripe, top_up_lock).
    Returns True if this call credited the wallet.
    """
    paid = money_from_stripe(amount, currency)
    if (paid.nanos, paid.currency) != (top_up.amount, top_up.currency):
        # Keep Stripe's id, so that a refund or dispute of this payment finds the top-up.
        top_up_link_payment_intent(top_up=top_up, payment_intent_id=payment_intent_id)
        TopUp.objects.filter(pk=top_up.pk).update(payment_set_aside=True)
        top_up.payment_set_aside = True
        _flag(
            top_up,
            f"Stripe reported {money_format(paid)} for a top-up of "
            f"{money_format(Money(top_up.amount, top_up.currency))}; not credited.",
        )
        return False
    if top_up.state in CREDITED:
        return False
    result = wallet_credit(
        account=top_up.billing_account,
        money=paid,
        transaction_id=payment_intent_id,
        actor=Actor.stripe(),
        memo="Card payment" if top_up.source == TopUp.Source.CHECKOUT else "Auto-recharge",
    )
    fully_refunded = top_up.refunded_amount >= top_up.amount
    TopUp.objects.filter(pk=top_up.pk).update(
        state=State.REFUNDED if fully_refunded else State.SUCCEEDED,
        succeeded_at=timezone.now(),
        updated_at=timezone.now(),
        stripe_payment_intent_id=payment_intent_id,
        ledger_transaction_id=result.entry.transaction_id,
    )
    return not result.replayed


def top_up_payment_attempt_failed(
    *, top_up: TopUp, reason: str, payment_intent_id: str, by_card: bool
) -> bool:
    """Stripe says a payment attempt failed (payment_intent.payment_failed). On Stripe's
    payment page that is one declined card: the page stays open and the developer may try
    another, so the top-up stays pending, counting against the limits and cancellable, until
    the page is paid or expires. A card is charged while the developer is on the page, so a
    card's failure never ends a Checkout top-up, even when Stripe delivers it after the page was
    completed with a bank debit. A failure after the page was completed that is not a card's (a
    bank debit that bounced), or on the offline test page, ends the top-up. True if it failed."""
    on_the_page = by_card or not top_up.stripe_payment_intent_id  # completing the page links it
    still_payable = (
        top_up.source == TopUp.Source.CHECKOUT
        and top_up.state == State.PENDING
        and on_the_page
        and _stripe_page(top_up) is not None
    )
    if still_payable:
        logger.info("Top-up %s: a payment attempt failed: %s", top_up.public_id, reason)
        return False
    return top_up_fail(top_up=top_up, reason=reason, payment_intent_id=payment_intent_id)


def top_up_fail(*, top_up: TopUp, reason: str, payment_intent_id: str | None = None) -> bool:
    fields: dict[str, object] = {"failure_reason": reason[:500]}
    if payment_intent_id:
        fields["stripe_payment_intent_id"] = payment_intent_id
    return _transition(top_up, State.FAILED, **fields)


def top_up_link_payment_intent(*, top_up: TopUp, payment_intent_id: str) -> None:
    TopUp.objects.filter(pk=top_up.pk, stripe_payment_intent_id__isnull=True).update(
        stripe_payment_intent_id=payment_intent_id
    )


def top_up_refund(*, top_up: TopUp, charge_id: str, amount_refunded: int, currency: str) -> None:
    """`charge.refunded` carries the cumulative refunded amount: debit only what is new.
    `top_up` is locked by the caller's transaction."""
    refunded = money_from_stripe(amount_refunded, currency)
    if not top_up_currency_matches(top_up=top_up, money=refunded, what="a refund"):
        return
    new = refunded.nanos - top_up.refunded_amount
    if new <= 0:
        _check_refunded_after_failure(top_up, refunded)
        return
    _stripe_entry(
        top_up,
        delta=-new,
        kind=LedgerEntry.Kind.REFUND,
        transaction_id=f"refund:{charge_id}:{amount_refunded}",
        memo=f"Refund of {money_format(Money(new, top_up.currency))} by Stripe",
    )
    fields: dict[str, object] = {"refunded_amount": refunded.nanos, "stripe_charge_id": charge_id}
    TopUp.objects.filter(pk=top_up.pk).update(**fields)
    top_up.refunded_amount = refunded.nanos
    if _refunded_net(top_up) >= top_up.amount:
        _transition(top_up, State.REFUNDED)


def _stripe_entry(top_up: TopUp, *, delta: int, kind: str, transaction_id: str, memo: str) -> None:
    """A ledger entry Stripe's money movement makes in the top-up's wallet, exactly once.
    Callers have checked the currency against the top-up's."""
    ledger_apply(
        account=top_up.billing_account,
        currency=top_up.currency,
        delta=delta,
        kind=kind,
        transaction_id=transaction_id,
        actor=Actor.stripe(),
        memo=memo,
    )


def _refunded_net(top_up: TopUp) -> int:
    """What the developer has been refunded and kept: refund debits less failed refunds."""
    return top_up.refunded_amount - top_up.refund_failed_amount


def _check_refunded_after_failure(top_up: TopUp, refunded: Money) -> None:
    """Refunds are debited by the charge's growing `amount_refunded`. Once a refund has failed,
    a total between what is kept and what was debited is either an old event or a new refund
    counted without the failed one: which, the charge does not say, so an admin looks."""
    if _refunded_net(top_up) < refunded.nanos and top_up.refund_failed_amount:
        _flag(
            top_up,
            f"Stripe reported {money_format(refunded)} refunded in all after a failed refund; "
            f"{money_format(Money(_refunded_net(top_up), top_up.currency))} is debited now. "
            "If this is a new refund, debit the difference by hand.",
        )


# A refund in one of these states gave the customer nothing back (Stripe returned the money to
# the account): its debit is given back to the developer.
REFUND_NOT_MADE = frozenset({"failed", "canceled"})


def top_up_refund_fail(*, top_up: TopUp, refund_id: str, amount: int, currency: str) -> bool:
    """A refund failed at Stripe: credit its debit back once (`refund-failed:<refund id>`).

    Returns False, changing nothing, while the refund's own debit has not been seen yet: the
    failure must not credit money that was never taken. `top_up` is locked by the caller.
    """
    money = money_from_stripe(amount, currency)
    if not top_up_currency_matches(top_up=top_up, money=money, what="a failed refund"):
        return True
    transaction_id = f"refund-failed:{refund_id}"
    if LedgerEntry.objects.filter(transaction_id=transaction_id).exists():
        return True  # the same failure, told by another event
    if top_up.refunded_amount < top_up.refund_failed_amount + money.nanos:
        return False
    _stripe_entry(
        top_up,
        delta=money.nanos,
        kind=LedgerEntry.Kind.REFUND,
        transaction_id=transaction_id,
        memo=f"Refund of {money_format(money)} failed at Stripe: given back",
    )
    top_up.refund_failed_amount += money.nanos
    TopUp.objects.filter(pk=top_up.pk).update(refund_failed_amount=top_up.refund_failed_amount)
    if top_up.state == State.REFUNDED and _refunded_net(top_up) < top_up.amount:
        _transition(top_up, State.SUCCEEDED)
    return True


# Dispute statuses under which Stripe has taken the disputed amount from the account. A won
# dispute had it taken and then given back. Inquiries (warning_*) and prevented disputes move no
# money; neither does a status this code does not know.
DISPUTE_FUNDS_WITHDRAWN = frozenset({"needs_response", "under_review", "lost", "won"})


def top_up_dispute(
    *, top_up: TopUp, dispute_id: str, amount: int, currency: str, status: str
) -> None:
    """Bring the wallet in line with the dispute as Stripe now describes it.

    Every dispute event carries the whole dispute, so the status alone says what Stripe has
    withdrawn: the debit once funds were withdrawn, and its reversal once the dispute is won.
    Both are exactly-once ledger entries, so events in any order and any number of times end in
    the same balance. `top_up` is locked by the caller's transaction.
    """
    if status not in DISPUTE_FUNDS_WITHDRAWN:
        return
    money = money_from_stripe(amount, currency)
    if not top_up_currency_matches(top_up=top_up, money=money, what="a dispute"):
        return
    _stripe_entry(
        top_up,
        delta=-money.nanos,
        kind=LedgerEntry.Kind.DISPUTE,
        transaction_id=f"dispute:{dispute_id}",
        memo=f"Card payment disputed ({money_format(money)})",
    )
    restored = f"dispute-won:{dispute_id}"
    if status == "won":
        _stripe_entry(
            top_up,
            delta=money.nanos,
            kind=LedgerEntry.Kind.DISPUTE,
            transaction_id=restored,
            memo=f"Dispute won: {money_format(money)} restored",
        )
        if top_up.state == State.DISPUTED:  # a refunded top-up stays refunded
            _transition(top_up, State.SUCCEEDED)
    elif not LedgerEntry.objects.filter(transaction_id=restored).exists():
        _transition(top_up, State.DISPUTED)  # not when a later "won" came first


def top_up_currency_matches(*, top_up: TopUp, money: Money, what: str) -> bool:
    """Money leaving in another currency than the top-up's would hit a wallet that never
    received the payment: flag the top-up for an admin instead, and move nothing."""
    if money.currency == top_up.currency:
        return True
    _flag(
        top_up,
        f"Stripe reported {what} of {money_format(money)} for a top-up of "
        f"{money_format(Money(top_up.amount, top_up.currency))}; no balance was changed.",
    )
    return False


def top_up_payment_set_aside(*, top_up: TopUp) -> bool:
    """Its payment was flagged for an admin instead of credited: it will not be credited by
    itself, so nothing waits for it."""
    return top_up.state not in CREDITED and top_up.payment_set_aside


def top_up_flag_uncredited(*, top_up: TopUp, what: str, money: Money) -> None:
    """Money left Stripe for a payment that was flagged and never credited: nothing to take
    back from the developer, so an admin settles it by hand."""
    _flag(
        top_up,
        f"Stripe reported {what} of {money_format(money)} for this top-up, which was never "
        "credited; no balance was changed.",
    )


def _flag(top_up: TopUp, reason: str) -> None:
    """Flag for an admin: one email per distinct reason, however often Stripe repeats it."""
    current = TopUp.objects.values_list("flag_reason", flat=True).get(pk=top_up.pk)
    if reason in current:
        return
    combined = f"{current}\n{reason}" if current else reason
    TopUp.objects.filter(pk=top_up.pk).update(flagged=True, flag_reason=combined)
    top_up.flagged, top_up.flag_reason = True, combined
    transaction.on_commit(lambda: notify_admins(f"Top-up {top_up.public_id} needs a look", reason))


def notify_admins(subject: str, message: str) -> bool:
    """Email the organisation's notification address, else Django's ADMINS, else everyone who
    may read the Add credit log: out of the box somebody hears of it. After commits only.
    False if the mail server refused it."""
    try:
        if settings.ADMINS and not organization_settings_get().notification_email:
            mail_admins(subject, message)
            return True
        recipients = _notification_recipients()
        if recipients:
            send_mail(
                f"[Developer portal] {subject}", message, settings.DEFAULT_FROM_EMAIL, recipients
            )
        else:
            logger.error("Nobody to email about: %s. %s", subject, message)
    except Exception:  # an unreachable mail server must not turn a handled event into a failure
        logger.exception("Could not email the administrators: %s", subject)
        return False
    return True


def _notification_recipients() -> list[str]:
    configured = organization_settings_get().notification_email
    if configured:
        return [configured]
    may_read_the_log = Q(
        user_permissions__codename="view_add_credit_log",
        user_permissions__content_type__app_label="billing",
    ) | Q(
        groups__permissions__codename="view_add_credit_log",
        groups__permissions__content_type__app_label="billing",
    )
    users = User.objects.filter(Q(is_superuser=True) | may_read_the_log, is_active=True)
    return sorted(set(users.values_list("email", flat=True)))


def add_credit_rows(*, account: BillingAccount) -> list[dict]:
    """One row per currency on the balance page: every currency offered, and every wallet."""
    wallets = {w.currency: w for w in Wallet.objects.filter(billing_account=account)}
    offered = list(TopUpLimit.objects.values_list("currency", flat=True))
    currencies = list(dict.fromkeys([*wallets, *offered]))
    return [
        {"currency": c, "wallet": wallets.get(c), "can_add_credit": c in offered}
        for c in currencies
    ]
