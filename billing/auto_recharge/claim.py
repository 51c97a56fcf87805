"""The claim: decide whether a recharge is due and record the attempt that will charge it."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.auto_recharge.selectors import (
    RUNAWAY_LIMIT,
    STALE_IN_FLIGHT,
    recharge_due,
    runaway_guard_until,
    runaway_minutes,
)
from billing.auto_recharge.settings import auto_recharge_switch_off
from billing.locks import auto_recharge_lock_for, top_up_limits_lock
from billing.models import AutoRecharge, RechargeAttempt, TopUp, Wallet
from billing.money import Money
from billing.notifications.admins import auto_recharge_stopped
from billing.top_ups.limits import TopUpRefused, top_up_check

logger = logging.getLogger(__name__)
Attempt = RechargeAttempt.State


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
        recharge = auto_recharge_lock_for(account_id=account_id, currency=currency)
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


def _runaway(recharge: AutoRecharge, now: datetime) -> bool:
    if runaway_guard_until(recharge, now) is None:
        return False
    reason = (
        f"Switched off by the runaway guard: more than {RUNAWAY_LIMIT} recharges in "
        f"{runaway_minutes()} minutes."
    )
    auto_recharge_switch_off(recharge, reason)
    user = recharge.billing_account.user
    transaction.on_commit(
        lambda: auto_recharge_stopped(email=user.email, currency=recharge.currency, reason=reason)
    )
    return True
