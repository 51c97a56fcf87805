"""A developer's auto-recharge settings, and switching it off."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing.audit import audit_log
from billing.auto_recharge.selectors import RUNAWAY_LIMIT, runaway_guard_until, runaway_minutes
from billing.events import emit_after_commit
from billing.exceptions import BillingError
from billing.ledger.events import BalanceAlertsDue, RechargeMayBeDue
from billing.locks import auto_recharge_lock
from billing.models import AutoRecharge, BillingAccount, Wallet
from billing.money import Money, MoneyError, stripe_amount_check, stripe_currency_check
from billing.top_ups.limits import top_up_offer


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
    """Save one currency's auto-recharge, checked against the Add credit limits. Switched on
    below the threshold, it charges the saved card after the commit: pages ask first
    (selectors.recharge_on_save)."""
    auto_recharge_check(
        account=account,
        currency=currency,
        enabled=enabled,
        threshold=threshold,
        mode=mode,
        amount=amount,
        monthly_cap=monthly_cap,
    )
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
            emit_after_commit(RechargeMayBeDue(account.pk, currency))
    return recharge


def auto_recharge_check(
    *,
    account: BillingAccount,
    currency: str,
    enabled: bool,
    threshold: Money,
    mode: str,
    amount: Money,
    monthly_cap: Money | None,
) -> None:
    """Refuse, with the reason, settings that auto_recharge_configure would refuse."""
    _check_settings(account, currency, enabled, threshold, mode, amount, monthly_cap)
    if enabled:
        _check_runaway_guard(account, currency)


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
    if threshold.nanos <= 0:
        raise BillingError(
            "The threshold cannot be negative or zero: a prepaid balance does not go below "
            "zero, so auto-recharge would never charge."
        )
    if threshold.nanos > offer.maximum.nanos:
        raise BillingError(
            f"The threshold can be at most {offer.maximum}, the largest top-up in {currency}: "
            "above it, every recharge would leave the balance still below the threshold."
        )
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
    fixed = mode == AutoRecharge.Mode.FIXED
    if monthly_cap is not None and fixed and monthly_cap.nanos < amount.nanos:
        raise BillingError(
            f"A monthly cap of {monthly_cap} is below the recharge amount of {amount}, so it "
            "could never charge: raise the cap or lower the amount."
        )


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
            f"{runaway_minutes()} minutes, so the runaway guard would switch it off again at "
            f"once. It can be switched on again after {until:%H:%M} UTC. Nothing was changed."
        )


def _sync_wallet_threshold(recharge: AutoRecharge) -> None:
    """Copy the threshold onto the wallet, where the debit statement reads it; and have its
    low-balance alerts armed again, which a working auto-recharge stands in for."""
    Wallet.objects.bulk_create(
        [Wallet(billing_account_id=recharge.billing_account_id, currency=recharge.currency)],
        ignore_conflicts=True,
    )
    Wallet.objects.filter(
        billing_account_id=recharge.billing_account_id, currency=recharge.currency
    ).update(recharge_below=recharge.threshold if recharge.enabled else None)
    balance_alerts_rearm(recharge)


def balance_alerts_rearm(recharge: AutoRecharge) -> None:
    """Whether the wallet alerts depends on its auto-recharge working: when that changes,
    disarm it and have its alerts checked after the commit (the beat's sweep would too)."""
    Wallet.objects.filter(
        billing_account_id=recharge.billing_account_id, currency=recharge.currency
    ).update(alert_at=None)
    emit_after_commit(BalanceAlertsDue(recharge.billing_account_id, recharge.currency))


def auto_recharge_switch_off_all(*, currency: str, reason: str) -> int:
    """Switch off every enabled auto-recharge in a currency, each under its own row lock."""
    switched = 0
    for pk in AutoRecharge.objects.filter(currency=currency, enabled=True).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            recharge = auto_recharge_lock(pk=pk)
            if recharge.enabled:
                auto_recharge_switch_off(recharge, reason)
                switched += 1
    return switched


def auto_recharge_switch_off(recharge: AutoRecharge, reason: str) -> None:
    AutoRecharge.objects.filter(pk=recharge.pk).update(enabled=False, disabled_reason=reason)
    recharge.enabled, recharge.disabled_reason = False, reason
    _sync_wallet_threshold(recharge)
