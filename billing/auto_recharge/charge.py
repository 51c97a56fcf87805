"""The off-session charge of a claimed attempt, and its outcome."""

from __future__ import annotations

import logging
from datetime import timedelta

import stripe
from django.db import transaction
from django.utils import timezone

from billing.auto_recharge.settings import auto_recharge_switch_off, balance_alerts_rearm
from billing.exceptions import BillingError
from billing.locks import auto_recharge_lock, recharge_attempt_lock, top_up_lock
from billing.models import AutoRecharge, BillingAccount, RechargeAttempt, TopUp
from billing.models.state import transition
from billing.money import MoneyError
from billing.notifications.developers import auto_recharge_failed_email
from billing.payments import stripe_gateway
from billing.payments.customers import stripe_customer_ensure
from billing.top_ups.confirmations import top_up_fail, top_up_succeed

logger = logging.getLogger(__name__)
Attempt = RechargeAttempt.State
FAILURE_BACKOFF = timedelta(hours=1)
# After a Stripe error saved under an attempt's key, before a new attempt (a new key) may start.
STRIPE_ERROR_PAUSE = timedelta(minutes=5)
FAILURES_BEFORE_SWITCH_OFF = 3


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
    money = attempt.amount_money
    _top_up_card_record(attempt, account)
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


def _top_up_card_record(attempt: RechargeAttempt, account: BillingAccount) -> None:
    """The receipt names the card this attempt charges: the developer may replace the saved
    card before the credit is confirmed. A retry under the same idempotency key charges what
    the first try did, so the first record stays."""
    if attempt.top_up_id is None:
        return
    TopUp.objects.filter(pk=attempt.top_up_id, card_last4="").update(
        card_brand=account.card_brand, card_last4=account.card_last4
    )


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
        attempt = recharge_attempt_lock(pk=attempt_id)
        succeeded = transition(
            attempt,
            Attempt.SUCCEEDED,
            locked=True,
            finished_at=timezone.now(),
            stripe_payment_intent_id=payment_intent_id,
        )
        if succeeded:
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
        recharge = auto_recharge_lock(pk=attempt.auto_recharge_id)
        recharge.consecutive_failures += 1
        recharge.retry_after = timezone.now() + FAILURE_BACKOFF
        recharge.save(update_fields=["consecutive_failures", "retry_after", "updated_at"])
        if recharge.consecutive_failures == 1:  # it stops standing in for the alerts
            balance_alerts_rearm(recharge)
        switched_off = recharge.consecutive_failures >= FAILURES_BEFORE_SWITCH_OFF
        if switched_off:
            auto_recharge_switch_off(
                recharge,
                f"Switched off after {recharge.consecutive_failures} failed charges in a row. "
                "Update your card and switch it on again.",
            )
        user = attempt.auto_recharge.billing_account.user
        transaction.on_commit(
            lambda: auto_recharge_failed_email(
                user=user, currency=recharge.currency, reason=reason, switched_off=switched_off
            )
        )


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
    attempt = recharge_attempt_lock(pk=attempt_id)
    failed = transition(
        attempt,
        Attempt.FAILED,
        locked=True,
        finished_at=timezone.now(),
        failure_reason=reason[:500],
        stripe_payment_intent_id=payment_intent_id,
    )
    if not failed:
        return None
    top_up_fail(top_up=top_up, reason=reason, payment_intent_id=payment_intent_id or None)
    return attempt


def recharge_attempt_for_top_up(top_up: TopUp) -> RechargeAttempt | None:
    if top_up.source != TopUp.Source.AUTO_RECHARGE:
        return None
    return RechargeAttempt.objects.filter(top_up=top_up).first()
