"""What the balance page shows of auto-recharge, per offered currency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from billing.auto_recharge.charge import FAILURES_BEFORE_SWITCH_OFF
from billing.auto_recharge.selectors import (
    recharge_month_total,
    recharge_waits_for_rise,
    runaway_guard_until,
)
from billing.models import AutoRecharge, BillingAccount, RechargeAttempt, TopUpLimit
from billing.money import Money
from billing.web.forms import AutoRechargeForm


def recharge_summary(recharge: AutoRecharge) -> str:
    if recharge.mode == AutoRecharge.Mode.FIXED:
        what = f"add {recharge.amount_money}"
    else:
        what = f"top up to {recharge.amount_money}"
    return f"When the balance falls below {recharge.threshold_money}, {what}."


def cap_summary(recharge: AutoRecharge, now: datetime) -> str:
    """E.g. "$20.00 of $50.00 used this month"; empty without a cap."""
    if recharge.monthly_cap is None:
        return ""
    used = Money(recharge_month_total(recharge, now), recharge.currency)
    return f"{used} of {recharge.monthly_cap_money} used this month"


def recharge_state(recharge: AutoRecharge | None, attempts: list[RechargeAttempt]) -> str:
    """How the panel shows auto-recharge: "off", "on", "charging", "declined" (the card failed:
    the developer acts) or "paused" (Stripe failed: it tries again by itself)."""
    if recharge is None or not recharge.enabled:
        return "off"
    last = attempts[0] if attempts else None
    if last is None or last.state == RechargeAttempt.State.SUCCEEDED:
        return "on"
    if last.state == RechargeAttempt.State.IN_FLIGHT:
        return "charging"
    return "declined" if recharge.consecutive_failures else "paused"


def recharge_panels(*, account: BillingAccount) -> list[dict[str, Any]]:
    """What the balance page shows per offered currency: settings form, state, last attempts."""

    recharges = {r.currency: r for r in AutoRecharge.objects.filter(billing_account=account)}
    now = timezone.now()
    panels = []
    for limit in TopUpLimit.objects.all():
        recharge = recharges.get(limit.currency)
        currency = limit.currency
        initial: dict[str, Any] = {
            "enabled": False,
            "mode": AutoRecharge.Mode.FIXED,
            "threshold": limit.minimum_money.input_text,
            "amount": limit.default_money.input_text,
        }
        if recharge:
            initial = {
                "enabled": recharge.enabled,
                "mode": recharge.mode,
                "threshold": recharge.threshold_money.input_text,
                "amount": recharge.amount_money.input_text,
                "monthly_cap": (
                    recharge.monthly_cap_money.input_text if recharge.monthly_cap else ""
                ),
            }
        attempts = list(recharge.attempts.all()[:5]) if recharge else []
        panels.append(
            {
                "currency": currency,
                "recharge": recharge,
                "summary": recharge_summary(recharge) if recharge else "",
                "cap": cap_summary(recharge, now) if recharge else "",
                "state": recharge_state(recharge, attempts),
                "form": AutoRechargeForm(initial=initial, currency=currency),
                "attempts": attempts,
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
