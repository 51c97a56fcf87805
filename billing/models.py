from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class BillingType(models.TextChoices):
    PREPAID = "PREPAID", "Prepaid"
    POSTPAID = "POSTPAID", "Postpaid"


class OrganizationSettings(models.Model):
    """The one row of portal-wide monetization settings (Configuration > Monetization)."""

    SINGLETON_ID = 1

    default_billing_type = models.CharField(
        max_length=8, choices=BillingType.choices, default=BillingType.POSTPAID
    )
    # How far below zero a prepaid debit may take a wallet, in nanos of the wallet's currency.
    prepaid_grace_nanos = models.BigIntegerField(default=0)
    # Seconds between two manual top-ups in one currency (card-testing and double-click guard).
    top_up_wait_seconds = models.PositiveIntegerField(default=300)
    notification_email = models.EmailField(
        blank=True, default="", help_text="Who is emailed when crediting a payment fails."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "organisation settings"
        verbose_name_plural = "organisation settings"
        permissions = [("administer_monetization", "Administer monetization")]

    def __str__(self) -> str:
        return "Organisation settings"


class BillingAccount(models.Model):
    """The payer that owns wallets: a developer today, a team later."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="billing_account"
    )
    # Empty means "not specified": the organisation's default applies.
    billing_type = models.CharField(
        max_length=8, choices=BillingType.choices, blank=True, default=""
    )
    legal_company_name = models.CharField(max_length=200, blank=True, default="")
    stripe_customer_id = models.CharField(max_length=255, blank=True, default="")
    # The saved card for auto-recharge: Stripe holds it; we keep its id, brand and last four.
    stripe_payment_method_id = models.CharField(max_length=255, blank=True, default="")
    card_brand = models.CharField(max_length=20, blank=True, default="")
    card_last4 = models.CharField(max_length=4, blank=True, default="")
    trust_tier = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [
            ("update_any_billing_type", "Update any billing type"),
            ("view_any_prepaid_balance", "View any prepaid balance"),
            ("adjust_any_prepaid_balance", "Adjust any prepaid balance"),
            ("view_add_credit_log", "View Add Credit Log"),
            ("debit_any_prepaid_balance", "Charge usage to any prepaid balance"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(billing_type__in=["", *BillingType.values]),
                name="billing_account_billing_type_valid",
            )
        ]

    def __str__(self) -> str:
        return f"Billing account of {self.user}"


class BillingTypeChange(models.Model):
    """One row per change of a developer's effective billing type; never edited."""

    class Source(models.TextChoices):
        ADMIN = "ADMIN", "Admin"
        ORGANIZATION_DEFAULT = "ORG_DEFAULT", "Organisation default"
        API = "API", "API"

    billing_account = models.ForeignKey(
        BillingAccount, on_delete=models.PROTECT, related_name="billing_type_changes"
    )
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    source = models.CharField(max_length=11, choices=Source.choices)
    # Effective billing types, so the history reads the way the developer experienced it.
    old_billing_type = models.CharField(max_length=8, choices=BillingType.choices)
    new_billing_type = models.CharField(max_length=8, choices=BillingType.choices)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.old_billing_type} → {self.new_billing_type} ({self.get_source_display()})"


class AuditLogEntry(models.Model):
    """Append-only trail of admin and API actions: who did what to whom, with the details."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=64, db_index=True)
    target_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_entries",
    )
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit log entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action}"


class Wallet(models.Model):
    """One balance per (billing account, currency); the cached sum of its ledger entries."""

    billing_account = models.ForeignKey(
        BillingAccount, on_delete=models.PROTECT, related_name="wallets"
    )
    currency = models.CharField(max_length=3)
    balance = models.BigIntegerField(default=0)  # nanos
    last_credit_at = models.DateTimeField(null=True, blank=True)
    # Copied from an enabled auto-recharge, so a debit learns in its own statement whether it
    # crossed the threshold, without another query on the hot path.
    recharge_below = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["billing_account", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["billing_account", "currency"], name="wallet_one_per_currency"
            )
        ]

    def __str__(self) -> str:
        return f"{self.currency} wallet of {self.billing_account.user}"


class LedgerEntry(models.Model):
    """One immutable row per balance change. Never updated, never deleted."""

    class Kind(models.TextChoices):
        TOP_UP = "TOP_UP", "Top-up"
        USAGE = "USAGE", "Usage"
        FEE = "FEE", "Fee"
        ADJUSTMENT = "ADJUSTMENT", "Adjustment"
        REFUND = "REFUND", "Refund"
        DISPUTE = "DISPUTE", "Dispute"
        EXPIRY = "EXPIRY", "Expiry"
        BILLING_TYPE_CHANGE = "BILLING_TYPE", "Billing type change"

    class ActorType(models.TextChoices):
        USER = "USER", "User"
        TOKEN = "TOKEN", "API token"
        STRIPE = "STRIPE", "Stripe"
        SYSTEM = "SYSTEM", "System"

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount = models.BigIntegerField()  # signed nanos: positive credits, negative debits
    balance_after = models.BigIntegerField()
    # The idempotency key: a transaction id, Stripe id or a generated one; applied at most once.
    transaction_id = models.CharField(max_length=255, unique=True)
    actor_type = models.CharField(max_length=6, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_token = models.ForeignKey(
        "accounts.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    memo = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["wallet", "-id"], name="ledger_wallet_recent")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} ({self.transaction_id})"


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

    def __str__(self) -> str:
        return f"Top-up {self.public_id} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state != self.State.PENDING


class StripeEvent(models.Model):
    """A verified webhook event, stored under Stripe's unique id before it is processed."""

    class Status(models.TextChoices):
        RECEIVED = "RECEIVED", "Received"
        PROCESSED = "PROCESSED", "Processed"
        IGNORED = "IGNORED", "Ignored (type not handled)"
        FAILED = "FAILED", "Failed"

    id = models.CharField(max_length=255, primary_key=True)
    type = models.CharField(max_length=100, db_index=True)
    payload = models.JSONField()
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # The admins were emailed about its failure: once per event, however often Stripe retries,
    # and again at the next failure if the mail server refused the first email.
    admins_notified = models.BooleanField(db_default=False)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.id} {self.type} ({self.status})"


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

    def __str__(self) -> str:
        return f"Recharge attempt {self.pk} ({self.state})"
