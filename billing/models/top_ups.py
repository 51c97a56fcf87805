from __future__ import annotations

import uuid

from django.db import models

from billing.models.billing_accounts import BillingAccount
from billing.money import MoneyProperty


class TopUpLimit(models.Model):
    """The organisation's Add credit limits for one currency (nanos)."""

    currency = models.CharField(max_length=3, unique=True)
    minimum = models.BigIntegerField()
    maximum = models.BigIntegerField()
    default = models.BigIntegerField()

    class Meta:
        ordering = ["currency"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(minimum__gt=0)
                & models.Q(maximum__gte=models.F("minimum"))
                & models.Q(default__gte=models.F("minimum"))
                & models.Q(default__lte=models.F("maximum")),
                name="top_up_limit_ordered",
            )
        ]

    minimum_money = MoneyProperty("minimum")
    maximum_money = MoneyProperty("maximum")
    default_money = MoneyProperty("default")

    def __str__(self) -> str:
        return f"{self.currency} top-up limits"


class TrustTier(models.Model):
    """Caps for developers of one trust tier in one currency: a single purchase and a month."""

    level = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=50)
    currency = models.CharField(max_length=3)
    max_single_purchase = models.BigIntegerField()
    max_monthly_total = models.BigIntegerField()

    class Meta:
        ordering = ["level", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["level", "currency"], name="trust_tier_per_currency")
        ]

    max_single_purchase_money = MoneyProperty("max_single_purchase")
    max_monthly_total_money = MoneyProperty("max_monthly_total")

    def __str__(self) -> str:
        return f"Tier {self.level} ({self.name}) {self.currency}"


class TopUp(models.Model):
    """One attempt to add credit with a card: a Checkout payment or an auto-recharge."""

    class State(models.TextChoices):
        PENDING = "PENDING", "Pending"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed"
        CANCELED = "CANCELED", "Cancelled"
        REFUNDED = "REFUNDED", "Refunded"
        DISPUTED = "DISPUTED", "Disputed"

    class Source(models.TextChoices):
        CHECKOUT = "CHECKOUT", "Add credit (Checkout)"
        AUTO_RECHARGE = "AUTO_RECHARGE", "Auto-recharge"

    # Which state may follow which; every change is a compare-and-set on the old state.
    # A payment Stripe confirms after we gave up on it still credits: the money was taken.
    TRANSITIONS: dict[str, set[str]] = {
        State.PENDING: {State.SUCCEEDED, State.FAILED, State.CANCELED},
        State.FAILED: {State.SUCCEEDED},
        State.CANCELED: {State.SUCCEEDED},
        State.SUCCEEDED: {State.REFUNDED, State.DISPUTED},
        State.DISPUTED: {State.SUCCEEDED, State.REFUNDED},
        # A refund that fails at Stripe gives the money back to the developer.
        State.REFUNDED: {State.SUCCEEDED},
    }

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    billing_account = models.ForeignKey(
        BillingAccount, on_delete=models.PROTECT, related_name="top_ups"
    )
    currency = models.CharField(max_length=3)
    amount = models.BigIntegerField()  # nanos
    source = models.CharField(max_length=13, choices=Source.choices, default=Source.CHECKOUT)
    state = models.CharField(max_length=9, choices=State.choices, default=State.PENDING)
    stripe_checkout_session_id = models.CharField(
        max_length=255, unique=True, null=True, blank=True
    )
    checkout_url = models.URLField(max_length=1000, blank=True, default="")
    stripe_payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True, default="")
    ledger_transaction_id = models.CharField(max_length=255, blank=True, default="")
    # The card charged, where the portal knows it when charging: an auto-recharge's saved card,
    # kept here because the developer may replace it before the receipt is sent. A Checkout
    # payment's card is known only to Stripe.
    card_brand = models.CharField(max_length=20, blank=True, default="")
    card_last4 = models.CharField(max_length=4, blank=True, default="")
    refunded_amount = models.BigIntegerField(default=0)  # nanos, cumulative
    # nanos: refunds that failed at Stripe after their debit, given back to the developer
    refund_failed_amount = models.BigIntegerField(default=0)
    failure_reason = models.CharField(max_length=500, blank=True, default="")
    # Stripe reported another amount or currency than we asked for: an admin must look.
    flagged = models.BooleanField(default=False)
    # Every reason an admin was told, one per line (a TextField: never cut, so a repeated
    # reason is always recognised and not emailed again).
    flag_reason = models.TextField(blank=True, default="")
    # Stripe reported another amount or currency for the payment: it is not credited, and its
    # refunds and disputes move nothing.
    payment_set_aside = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The Drupal module's name for the list of top-ups, as the admin and issue 4 call it.
        verbose_name = "top-up"
        verbose_name_plural = "add credit log"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["billing_account", "currency", "-created_at"], name="top_up_recent"
            )
        ]

    money = MoneyProperty("amount")
    refunded_money = MoneyProperty("refunded_amount")
    refund_failed_money = MoneyProperty("refund_failed_amount")

    def __str__(self) -> str:
        return f"Top-up {self.public_id} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state != self.State.PENDING
