"""What the balance page warns about per currency: a failing auto-recharge, a top-up that
failed or is still pending. Colour, an icon and words, never colour alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billing.models import BillingAccount, TopUp
from billing.top_ups.selectors import latest_checkout_top_ups, top_up_payable


@dataclass(frozen=True)
class PaymentWarning:
    level: str  # "warn": the developer should act; "pending": it is under way
    text: str
    action: str = ""  # "replace_card", "try_again", "status" or "" (the template draws it)
    top_up: TopUp | None = None


def payment_warnings(
    *, account: BillingAccount, panels: list[dict[str, Any]]
) -> dict[str, list[PaymentWarning]]:
    """Per currency: what went wrong or is still under way with the developer's payments."""
    warnings: dict[str, list[PaymentWarning]] = {}
    for panel in panels:
        warning = _recharge_warning(panel)
        if warning:
            warnings.setdefault(panel["currency"], []).append(warning)
    for currency, top_up in latest_checkout_top_ups(account=account).items():
        warning = _top_up_warning(top_up)
        if warning:
            warnings.setdefault(currency, []).append(warning)
    return warnings


def _recharge_warning(panel: dict[str, Any]) -> PaymentWarning | None:
    if panel["state"] == "declined":
        reason = panel["attempts"][0].failure_reason or "the card was declined."
        return PaymentWarning("warn", f"Auto-recharge failed: {reason}", "replace_card")
    if panel.get("switched_off") and panel.get("declined"):
        reason = panel["recharge"].disabled_reason
        return PaymentWarning("warn", f"Auto-recharge is off: {reason}", "replace_card")
    return None


def _top_up_warning(top_up: TopUp) -> PaymentWarning | None:
    amount = top_up.money
    if top_up.state == TopUp.State.FAILED:
        reason = top_up.failure_reason or "the payment did not go through."
        return PaymentWarning(
            "warn", f"Your top-up of {amount} failed: {reason}", "try_again", top_up
        )
    if top_up.state != TopUp.State.PENDING:
        return None
    if top_up.stripe_payment_intent_id:
        text = f"Your top-up of {amount} is paid and waiting for the bank to confirm it."
        return PaymentWarning("pending", text, "status", top_up)
    if top_up_payable(top_up):
        text = f"Your top-up of {amount} is not paid yet."
        return PaymentWarning("pending", text, "status", top_up)
    return None
