from __future__ import annotations

import uuid

from django.db import models

from billing.models.billing_accounts import BillingAccount
from billing.models.top_ups import TopUp
from billing.money import MoneyProperty


class AutoRecharge(models.Model):
    """Per wallet currency: when the balance falls below the threshold, charge the saved card."""

    class Mode(models.TextChoices):
        FIXED = "FIXED", "Add a fixed amount"
        TARGET = "TARGET", "Top up to a target balance"

    billing_account = models.ForeignKey(
        BillingAccount, on_delete=models.PROTECT, related_name="auto_recharges"
    )
    currency = models.CharField(max_length=3)
    enabled = models.BooleanField(default=False)
    threshold = models.BigIntegerField()  # nanos
    mode = models.CharField(max_length=6, choices=Mode.choices, default=Mode.FIXED)
    amount = models.BigIntegerField()  # nanos: the fixed amount, or the target balance
    monthly_cap = models.BigIntegerField(null=True, blank=True)  # nanos; None: no cap
    consecutive_failures = models.PositiveSmallIntegerField(default=0)
    retry_after = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["billing_account", "currency"], name="auto_recharge_per_currency"
            )
        ]

    threshold_money = MoneyProperty("threshold")
    amount_money = MoneyProperty("amount")
    monthly_cap_money = MoneyProperty("monthly_cap")

    def __str__(self) -> str:
        return f"Auto-recharge {self.currency} of {self.billing_account.user}"


def _recharge_idempotency_key() -> str:
    return f"auto-recharge-{uuid.uuid4()}"


class RechargeAttempt(models.Model):
    """One off-session charge for an auto-recharge. At most one is in flight per auto-recharge:
    the partial unique constraint is the claim, so two workers cannot both charge."""

    class State(models.TextChoices):
        IN_FLIGHT = "IN_FLIGHT", "In progress"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed"

    # Which state may follow which; every change is a compare-and-set (models/state.py).
    TRANSITIONS: dict[str, set[str]] = {
        State.IN_FLIGHT: {State.SUCCEEDED, State.FAILED},
        State.SUCCEEDED: set(),
        State.FAILED: set(),
    }

    auto_recharge = models.ForeignKey(
        AutoRecharge, on_delete=models.PROTECT, related_name="attempts"
    )
    top_up = models.OneToOneField(
        TopUp, null=True, blank=True, on_delete=models.PROTECT, related_name="recharge_attempt"
    )
    state = models.CharField(max_length=9, choices=State.choices, default=State.IN_FLIGHT)
    amount = models.BigIntegerField()  # nanos
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, default="")
    failure_reason = models.CharField(max_length=500, blank=True, default="")
    # The same key for every retry of this attempt, so Stripe charges it at most once. Random,
    # not the row id: Stripe keeps keys per account for 24 h, and a restored database or a
    # second portal on the same Stripe account reuses ids (and would replay another charge).
    idempotency_key = models.CharField(
        max_length=255, default=_recharge_idempotency_key, editable=False
    )
    # The Celery task that claimed it: only that task (redelivered after its worker died) or,
    # once the attempt is stale, the sweep may resume it; other triggers leave it alone.
    task_id = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["auto_recharge"],
                condition=models.Q(state="IN_FLIGHT"),
                name="one_recharge_in_flight",
            )
        ]

    amount_money = MoneyProperty("amount", currency="auto_recharge.currency")

    def __str__(self) -> str:
        return f"Recharge attempt {self.pk} ({self.state})"
