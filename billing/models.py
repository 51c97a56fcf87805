from __future__ import annotations

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
