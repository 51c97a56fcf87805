from __future__ import annotations

from django.conf import settings
from django.db import models


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
    # The provider's terms for buying a plan: shown with a required checkbox on purchase.
    purchase_terms = models.TextField(blank=True, default="")
    # Where developers write for help: every "contact us" on the portal's pages names it.
    support_email = models.EmailField(blank=True, default="")
    notification_email = models.EmailField(
        blank=True, default="", help_text="Who is emailed when crediting a payment fails."
    )
    # How many months of statements developers can download (the Drupal module's "billing
    # history limit").
    billing_history_months = models.PositiveSmallIntegerField(default=12)
    # Prepaid wallets alert when the balance falls to these percentages of the balance right
    # after the last top-up, highest first.
    balance_alert_percents = models.CharField(max_length=50, default="50,20,5")
    # Credits expire this many days after they were credited (seed 003: a year); 0: never.
    credit_lifetime_days = models.PositiveIntegerField(default=365)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "organisation settings"
        verbose_name_plural = "organisation settings"
        permissions = [
            ("administer_monetization", "Administer monetization"),
            ("view_revenue_reports", "View revenue reports"),
        ]

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
    # Billing details printed on statements.
    address = models.TextField(max_length=500, blank=True, default="")
    country = models.CharField(max_length=2, blank=True, default="")  # ISO 3166-1 alpha-2
    tax_id = models.CharField(max_length=50, blank=True, default="")
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

    @property
    def card_label(self) -> str:
        """The saved card as people read it, e.g. "Visa •••• 4242"; empty without one."""
        if not self.card_last4:
            return ""
        return f"{self.card_brand.title()} •••• {self.card_last4}"


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
