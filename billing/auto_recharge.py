"""Auto-recharge: when a prepaid wallet falls below its threshold, charge the saved card
off-session, exactly once per need.

Exactly once: an attempt row is the claim (a partial unique index allows one in flight per
auto-recharge), its id is the Stripe idempotency key (a retried or repeated charge returns the
same PaymentIntent), and the credit uses the PaymentIntent id as ledger transaction id (the
webhook and the task may both see the success; the wallet is credited once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import stripe
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from billing import stripe_gateway
from billing.exceptions import BillingError
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
from billing.money import (
    Money,
    MoneyError,
    money_format,
    stripe_amount_check,
    stripe_currency_check,
    stripe_minimum_charge,
    stripe_round_up,
)
from billing.selectors import billing_type_effective
from billing.services import audit_log
from billing.top_ups import (
    TopUpRefused,
    notify_admins,
    stripe_customer_call,
    stripe_customer_ensure,
    top_up_check,
    top_up_fail,
    top_up_limits_lock,
    top_up_lock,
    top_up_offer,
    top_up_succeed,
)

logger = logging.getLogger(__name__)
Attempt = RechargeAttempt.State
FAILURE_BACKOFF = timedelta(hours=1)
# After a Stripe error saved under an attempt's key, before a new attempt (a new key) may start.
STRIPE_ERROR_PAUSE = timedelta(minutes=5)
FAILURES_BEFORE_SWITCH_OFF = 3
RUNAWAY_WINDOW = timedelta(minutes=10)
RUNAWAY_LIMIT = 3  # more successful recharges than this within the window stop auto-recharge
# An attempt still in flight after this long lost its worker; the sweep resumes it.
STALE_IN_FLIGHT = timedelta(minutes=5)


# ---- Settings ----


def auto_recharge_configure(
    *,
    account: BillingAccount,
    currency: str,
    enabled: bool,
    threshold: Money,
    mode: str,
    amount: Money,
    monthly_cap: Money | None,
    changed_by: User | None,
) -> AutoRecharge:
    """Save one currency's auto-recharge, checked against the Add credit limits."""
    _check_settings(account, currency, enabled, threshold, mode, amount, monthly_cap)
    if enabled:
        _check_runaway_guard(account, currency)
    with transaction.atomic():
        recharge, _ = AutoRecharge.objects.select_for_update().update_or_create(
            billing_account=account,
            currency=currency,
            defaults={
                "enabled": enabled,
                "threshold": threshold.nanos,
                "mode": mode,
                "amount": amount.nanos,
                "monthly_cap": monthly_cap.nanos if monthly_cap else None,
                **(
                    {"consecutive_failures": 0, "retry_after": None, "disabled_reason": ""}
                    if enabled
                    else {}
                ),
            },
        )
        _sync_wallet_threshold(recharge)
        audit_log(
            actor=changed_by,
            action="auto_recharge.configure",
            target_user=account.user,
            currency=currency,
            enabled=enabled,
            threshold_nanos=threshold.nanos,
            mode=mode,
            amount_nanos=amount.nanos,
            monthly_cap_nanos=monthly_cap.nanos if monthly_cap else None,
        )
        if enabled:
            # The balance may already be below the new threshold.
            transaction.on_commit(
                lambda: auto_recharge_request(account_id=account.pk, currency=currency),
                robust=True,  # the settings are saved; the sweep retries a failed trigger
            )
    return recharge


def _check_settings(
    account: BillingAccount,
    currency: str,
    enabled: bool,
    threshold: Money,
    mode: str,
    amount: Money,
    monthly_cap: Money | None,
) -> None:
    offer = top_up_offer(account=account, currency=currency)
    if offer is None:
        raise BillingError(
            f"Adding credit in {currency} is not offered, so neither is auto-recharge."
        )
    try:
        stripe_currency_check(currency)  # limits saved before the settings page checked it
    except MoneyError as exc:
        raise BillingError(str(exc)) from exc
    if enabled and not account.stripe_payment_method_id:
        raise BillingError("Save a card first: auto-recharge charges it.")
    if threshold.nanos < 0:
        raise BillingError("The threshold cannot be negative.")
    if mode == AutoRecharge.Mode.FIXED:
        if not offer.minimum.nanos <= amount.nanos <= offer.maximum.nanos:
            raise BillingError(
                f"The recharge amount must be between {offer.minimum} and {offer.maximum}."
            )
        try:
            stripe_amount_check(amount)  # the card is charged exactly this
        except MoneyError as exc:
            raise BillingError(str(exc)) from exc
    elif mode == AutoRecharge.Mode.TARGET:
        if amount.nanos <= threshold.nanos:
            raise BillingError("The target balance must be above the threshold.")
        if amount.nanos - threshold.nanos > offer.maximum.nanos:
            raise BillingError(
                f"Topping up from the threshold to the target would exceed {offer.maximum} "
                "in one charge."
            )
    else:
        raise BillingError("Choose a fixed amount or a target balance.")
    if monthly_cap is not None and monthly_cap.nanos < offer.minimum.nanos:
        raise BillingError(f"A monthly cap below {offer.minimum} would stop every recharge.")


def _check_runaway_guard(account: BillingAccount, currency: str) -> None:
    """Switched on again while the runaway guard still counts too many recharges, it would be
    switched off at its next charge: say when it can be switched on instead."""
    recharge = AutoRecharge.objects.filter(
        billing_account=account, currency=currency, enabled=False
    ).first()
    until = runaway_guard_until(recharge, timezone.now()) if recharge else None
    if until is not None:
        # Whoever switched it off, switching it on now would only be undone by the guard.
        raise BillingError(
            f"Auto-recharge charged your card more than {RUNAWAY_LIMIT} times in the last "
            f"{_runaway_minutes()} minutes, so the runaway guard would switch it off again at "
            f"once. It can be switched on again after {until:%H:%M} UTC. Nothing was changed."
        )


def _sync_wallet_threshold(recharge: AutoRecharge) -> None:
    """Copy the threshold onto the wallet, where the debit statement reads it."""
    Wallet.objects.bulk_create(
        [Wallet(billing_account_id=recharge.billing_account_id, currency=recharge.currency)],
        ignore_conflicts=True,
    )
    Wallet.objects.filter(
        billing_account_id=recharge.billing_account_id, currency=recharge.currency
    ).update(recharge_below=recharge.threshold if recharge.enabled else None)


def auto_recharge_switch_off_all(*, currency: str, reason: str) -> int:
    """Switch off every enabled auto-recharge in a currency, each under its own row lock."""
    switched = 0
    for pk in AutoRecharge.objects.filter(currency=currency, enabled=True).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            recharge = AutoRecharge.objects.select_for_update().get(pk=pk)
            if recharge.enabled:
                _switch_off(recharge, reason)
                switched += 1
    return switched


def _switch_off(recharge: AutoRecharge, reason: str) -> None:
    AutoRecharge.objects.filter(pk=recharge.pk).update(enabled=False, disabled_reason=reason)
    recharge.enabled, recharge.disabled_reason = False, reason
    _sync_wallet_threshold(recharge)


# ---- Cards ----


def card_save(*, account: BillingAccount, payment_method_id: str, brand: str, last4: str) -> None:
    BillingAccount.objects.filter(pk=account.pk).update(
        stripe_payment_method_id=payment_method_id, card_brand=brand[:20], card_last4=last4[:4]
    )
    audit_log(
        actor=account.user, action="card.save", target_user=account.user, brand=brand, last4=last4
    )


def card_save_from_setup_intent(*, account_id: int, setup_intent_id: str) -> None:
    """After a setup-mode Checkout: ask Stripe which card was saved (outside transactions)."""
    payment_method_id, brand, last4 = stripe_gateway.card_from_setup_intent(setup_intent_id)
    account = BillingAccount.objects.select_related("user").get(pk=account_id)
    card_save(account=account, payment_method_id=payment_method_id, brand=brand, last4=last4)


# ---- The trigger and the claim ----


def auto_recharge_request(*, account_id: int, currency: str) -> None:
    """Ask a worker to recharge (in-process when Celery has no broker). Call after commit."""
    from billing.tasks import auto_recharge_run

    auto_recharge_run.delay(account_id, currency)


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


def auto_recharge_claim(
    *, account_id: int, currency: str, task_id: str = ""
) -> RechargeAttempt | None:
    """Decide whether a recharge is due and claim it for `task_id`.

    An attempt in flight is resumed only by the task that claimed it (a redelivery after its
    worker died) or once it is stale (the sweep); any other trigger returns None, so one
    attempt is never charged by two workers at once. Returns None when nothing is to be
    charged (balance fine, switched off, backing off, caps).
    """
    now = timezone.now()
    with transaction.atomic():
        recharge = (
            # Only this row: locking the joined account FOR UPDATE waited for debits, which
            # hold it FOR KEY SHARE while waiting for the wallet, and deadlocked with them.
            AutoRecharge.objects.select_for_update(of=("self",))
            .select_related("billing_account__user")
            .filter(billing_account_id=account_id, currency=currency)
            .first()
        )
        if recharge is None:
            return None
        in_flight = recharge.attempts.filter(state=Attempt.IN_FLIGHT).first()
        if in_flight is not None:
            mine = bool(task_id) and in_flight.task_id == task_id
            if mine or in_flight.created_at < now - STALE_IN_FLIGHT:
                return in_flight
            return None
        account = recharge.billing_account
        balance = (
            Wallet.objects.filter(billing_account=account, currency=currency)
            .values_list("balance", flat=True)
            .first()
        ) or 0
        amount = recharge_due(
            recharge, balance=balance, now=now, runaway=lambda: _runaway(recharge, now)
        )
        if amount is None:
            return None
        # After the auto-recharge row: nothing locks the account and then the auto-recharge.
        top_up_limits_lock(account=account)
        try:
            top_up_check(
                account=account, money=Money(amount, currency), source=TopUp.Source.AUTO_RECHARGE
            )
        except TopUpRefused as exc:
            logger.info("Auto-recharge %s skipped: %s", recharge.pk, exc)
            return None
        top_up = TopUp.objects.create(
            billing_account=account,
            currency=currency,
            amount=amount,
            source=TopUp.Source.AUTO_RECHARGE,
        )
        try:
            with transaction.atomic():
                return RechargeAttempt.objects.create(
                    auto_recharge=recharge, top_up=top_up, amount=amount, task_id=task_id
                )
        except IntegrityError:  # another worker claimed it first (the row lock makes this rare)
            transaction.set_rollback(True)
            return None


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
        _month_total(recharge, now) + amount > recharge.monthly_cap
    ):
        return None
    return amount


def recharge_waits_for_rise(recharge: AutoRecharge) -> bool:
    """One charge per fall below the threshold. A recharge that left the balance below it (a
    fixed amount smaller than the gap) is not repeated every minute by the sweep until the
    runaway guard switches it off: the next waits until the balance has been back at or above
    the threshold, or the developer saves the settings again."""
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


def _runaway_minutes() -> int:
    return int(RUNAWAY_WINDOW.total_seconds() // 60)


def _runaway(recharge: AutoRecharge, now: Any) -> bool:
    if runaway_guard_until(recharge, now) is None:
        return False
    reason = (
        f"Switched off by the runaway guard: more than {RUNAWAY_LIMIT} recharges in "
        f"{_runaway_minutes()} minutes."
    )
    _switch_off(recharge, reason)
    user = recharge.billing_account.user
    transaction.on_commit(
        lambda: notify_admins(
            f"Auto-recharge stopped for {user.email}",
            f"{reason} Currency {recharge.currency}. Check the developer's usage before "
            "switching it on again.",
        )
    )
    return True


def _month_total(recharge: AutoRecharge, now: Any) -> int:
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (
        recharge.attempts.filter(
            state__in=[Attempt.SUCCEEDED, Attempt.IN_FLIGHT], created_at__gte=month_start
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )


# ---- The charge and its outcome ----


def auto_recharge_charge(*, attempt_id: int) -> str:
    """Charge the card for a claimed attempt. Transient Stripe errors propagate for a retry
    with the same idempotency key; a decline ends the attempt."""
    attempt = RechargeAttempt.objects.select_related(
        "auto_recharge__billing_account__user", "top_up"
    ).get(pk=attempt_id)
    if attempt.state != Attempt.IN_FLIGHT:
        return attempt.state
    recharge = attempt.auto_recharge
    account = recharge.billing_account
    money = Money(attempt.amount, recharge.currency)
    try:
        customer_id = stripe_customer_ensure(account) if stripe_gateway.stripe_enabled() else ""
        result = stripe_gateway.off_session_charge(
            customer_id=customer_id,
            payment_method_id=account.stripe_payment_method_id,
            money=money,
            metadata={
                "top_up_id": str(attempt.top_up.public_id) if attempt.top_up else "",
                "recharge_attempt_id": str(attempt.pk),
            },
            idempotency_key=attempt.idempotency_key,
        )
    except stripe_gateway.CardDeclined as exc:
        recharge_attempt_fail(
            attempt_id=attempt.pk, reason=str(exc), payment_intent_id=exc.payment_intent_id
        )
        return Attempt.FAILED
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        # Stripe refused the portal's own API key, not the card: counting it as a decline told
        # the developer to update their card and switched auto-recharge off after three.
        logger.error("Auto-recharge attempt %s: Stripe refused the API key: %s", attempt.pk, exc)
        recharge_attempt_abandon(
            attempt_id=attempt.pk,
            reason=f"Stripe refused the portal's API key: {exc.user_message or exc}",
        )
        return Attempt.FAILED
    except stripe.InvalidRequestError as exc:
        recharge_attempt_fail(
            attempt_id=attempt.pk, reason=f"Stripe refused the charge: {exc.user_message or exc}"
        )
        return Attempt.FAILED
    except (BillingError, MoneyError) as exc:  # e.g. an amount Stripe cannot take: no retry helps
        recharge_attempt_fail(attempt_id=attempt.pk, reason=str(exc))
        return Attempt.FAILED
    except (stripe.APIError, stripe.IdempotencyError) as exc:
        if not stripe_gateway.error_was_saved(exc):
            raise  # not saved: the task retries under the same key
        # Retrying would replay the saved error until the key expires (24 h): find out
        # whether the charge was made, else close this attempt so that a new one may start.
        found = stripe_gateway.payment_intent_for_attempt(
            customer_id=customer_id,
            attempt_id=attempt.pk,
            top_up_id=str(attempt.top_up.public_id) if attempt.top_up else "",
        )
        if found is None:
            detail = exc.user_message or str(exc)
            recharge_attempt_abandon(
                attempt_id=attempt.pk,
                reason=f"Stripe answered with an error and made no charge: {detail}",
            )
            return Attempt.FAILED
        result = found
    RechargeAttempt.objects.filter(pk=attempt.pk).update(
        stripe_payment_intent_id=result.payment_intent_id
    )
    if result.status == "succeeded":
        recharge_attempt_succeed(
            attempt_id=attempt.pk,
            payment_intent_id=result.payment_intent_id,
            amount=result.amount,
            currency=result.currency,
        )
        return Attempt.SUCCEEDED
    return Attempt.IN_FLIGHT  # processing: the webhook settles it


def recharge_attempt_succeed(
    *, attempt_id: int, payment_intent_id: str, amount: int, currency: str
) -> None:
    """Credit through the same exactly-once path as a manual top-up, then close the attempt."""
    top_up_id = RechargeAttempt.objects.values_list("top_up_id", flat=True).get(pk=attempt_id)
    with transaction.atomic():
        # Lock order everywhere: top-up, attempt (the webhook path locks the top-up first), then
        # the auto-recharge before the wallet, as saving the settings does: crediting first
        # held the wallet while waiting for the auto-recharge, a deadlock with that save.
        top_up = top_up_lock(top_up_id=top_up_id)
        attempt = RechargeAttempt.objects.select_for_update().get(pk=attempt_id)
        if attempt.state == Attempt.IN_FLIGHT:
            RechargeAttempt.objects.filter(pk=attempt.pk).update(
                state=Attempt.SUCCEEDED,
                finished_at=timezone.now(),
                stripe_payment_intent_id=payment_intent_id,
            )
            AutoRecharge.objects.filter(pk=attempt.auto_recharge_id).update(
                consecutive_failures=0, retry_after=None
            )
        top_up_succeed(
            top_up=top_up,
            payment_intent_id=payment_intent_id,
            amount=amount,
            currency=currency,
        )


def recharge_attempt_fail(*, attempt_id: int, reason: str, payment_intent_id: str = "") -> None:
    """A decline: back off an hour, tell the developer, switch off after three in a row."""
    with transaction.atomic():
        attempt = _attempt_close_failed(attempt_id, reason, payment_intent_id)
        if attempt is None:
            return
        recharge = AutoRecharge.objects.select_for_update().get(pk=attempt.auto_recharge_id)
        recharge.consecutive_failures += 1
        recharge.retry_after = timezone.now() + FAILURE_BACKOFF
        recharge.save(update_fields=["consecutive_failures", "retry_after", "updated_at"])
        switched_off = recharge.consecutive_failures >= FAILURES_BEFORE_SWITCH_OFF
        if switched_off:
            _switch_off(
                recharge,
                f"Switched off after {recharge.consecutive_failures} failed charges in a row. "
                "Update your card and switch it on again.",
            )
        user = attempt.auto_recharge.billing_account.user
        transaction.on_commit(lambda: _email_developer(user, recharge, reason, switched_off))


def recharge_attempt_abandon(*, attempt_id: int, reason: str) -> None:
    """Stripe failed, not the card: close the attempt without counting it against the
    developer or emailing them; a new attempt, with a new idempotency key, may follow after
    a short pause."""
    with transaction.atomic():
        attempt = _attempt_close_failed(attempt_id, reason, payment_intent_id="")
        if attempt is None:
            return
        AutoRecharge.objects.filter(pk=attempt.auto_recharge_id).update(
            retry_after=timezone.now() + STRIPE_ERROR_PAUSE
        )
    logger.warning("Auto-recharge attempt %s abandoned: %s", attempt_id, reason)


def _attempt_close_failed(
    attempt_id: int, reason: str, payment_intent_id: str
) -> RechargeAttempt | None:
    """Inside the caller's transaction: lock the top-up, then the attempt, and fail both;
    None if the attempt was no longer in flight (another worker or the webhook settled it)."""
    top_up_id = RechargeAttempt.objects.values_list("top_up_id", flat=True).get(pk=attempt_id)
    top_up = top_up_lock(top_up_id=top_up_id)
    attempt = (
        RechargeAttempt.objects.select_for_update(of=("self",))
        .select_related("auto_recharge__billing_account__user")
        .get(pk=attempt_id)
    )
    if attempt.state != Attempt.IN_FLIGHT:
        return None
    RechargeAttempt.objects.filter(pk=attempt.pk).update(
        state=Attempt.FAILED,
        finished_at=timezone.now(),
        failure_reason=reason[:500],
        stripe_payment_intent_id=payment_intent_id,
    )
    top_up_fail(top_up=top_up, reason=reason, payment_intent_id=payment_intent_id or None)
    return attempt


def recharge_attempt_for_top_up(top_up: TopUp) -> RechargeAttempt | None:
    if top_up.source != TopUp.Source.AUTO_RECHARGE:
        return None
    return RechargeAttempt.objects.filter(top_up=top_up).first()


def _email_developer(user: User, recharge: AutoRecharge, reason: str, switched_off: bool) -> None:
    link = settings.PORTAL_BASE_URL + reverse("my_balance")
    what = "Auto-recharge is now switched off." if switched_off else "We will try again in an hour."
    try:
        send_mail(
            f"[Developer portal] Auto-recharge of your {recharge.currency} balance failed",
            f"Hello {user.get_full_name() or user.email},\n\nWe could not charge your saved card "
            f"to recharge your {recharge.currency} balance: {reason}\n{what}\n\n"
            f"Update your card or settings here: {link}\n",
            settings.DEFAULT_FROM_EMAIL,
            [user.email],
        )
    except Exception:  # mail trouble must not undo the recorded failure
        logger.exception("Could not email %s about a failed auto-recharge", user.email)


# ---- The sweep ----


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


def recharge_summary(recharge: AutoRecharge) -> str:
    if recharge.mode == AutoRecharge.Mode.FIXED:
        what = f"add {money_format(Money(recharge.amount, recharge.currency))}"
    else:
        what = f"top up to {money_format(Money(recharge.amount, recharge.currency))}"
    below = money_format(Money(recharge.threshold, recharge.currency))
    return f"When the balance falls below {below}, {what}."


def card_setup_start(*, account: BillingAccount, base_url: str) -> str:
    """Open Stripe Checkout in setup mode for this account; returns the page's URL."""
    try:
        _, url = stripe_customer_call(
            account,
            lambda customer_id: stripe_gateway.setup_session_create(
                customer_id=customer_id,
                success_url=base_url + reverse("card_saved"),
                cancel_url=base_url + reverse("my_balance"),
                billing_account_id=account.pk,
            ),
        )
    except stripe.StripeError as exc:
        logger.warning("Setup session for account %s failed: %s", account.pk, exc)
        raise BillingError("Stripe's page could not be opened. Try again in a minute.") from exc
    return url


def recharge_panels(*, account: BillingAccount) -> list[dict[str, Any]]:
    """What the balance page shows per offered currency: settings form, state, last attempts."""
    from billing.forms import AutoRechargeForm

    recharges = {r.currency: r for r in AutoRecharge.objects.filter(billing_account=account)}
    now = timezone.now()
    panels = []
    for limit in TopUpLimit.objects.all():
        recharge = recharges.get(limit.currency)
        currency = limit.currency
        initial: dict[str, Any] = {
            "enabled": False,
            "mode": AutoRecharge.Mode.FIXED,
            "threshold": Money(limit.minimum, currency).input_text,
            "amount": Money(limit.default, currency).input_text,
        }
        if recharge:
            initial = {
                "enabled": recharge.enabled,
                "mode": recharge.mode,
                "threshold": Money(recharge.threshold, currency).input_text,
                "amount": Money(recharge.amount, currency).input_text,
                "monthly_cap": (
                    Money(recharge.monthly_cap, currency).input_text if recharge.monthly_cap else ""
                ),
            }
        panels.append(
            {
                "currency": currency,
                "recharge": recharge,
                "summary": recharge_summary(recharge) if recharge else "",
                "form": AutoRechargeForm(initial=initial, currency=currency),
                "attempts": list(recharge.attempts.all()[:5]) if recharge else [],
                "waits_for_rise": bool(
                    recharge and recharge.enabled and recharge_waits_for_rise(recharge)
                ),
                **_switched_off(recharge, now),
            }
        )
    return panels


def _switched_off(recharge: AutoRecharge | None, now: datetime) -> dict[str, Any]:
    """Why auto-recharge switched itself off, for the note on what switching it on does."""
    if recharge is None or recharge.enabled or not recharge.disabled_reason:
        return {"switched_off": False}
    return {
        "switched_off": True,
        "declined": recharge.consecutive_failures >= FAILURES_BEFORE_SWITCH_OFF,
        "guard_until": runaway_guard_until(recharge, now),
    }
