from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from billing.models.billing_accounts import BillingAccount
from billing.money import MoneyProperty


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
    # Low-balance alerts (billing/notifications/alerts.py): the next alert is due once the
    # balance is at or below this (the ledger's statement says so); None: none armed. The
    # developer's own amount to be alerted at, besides the organisation's percentages.
    alert_at = models.BigIntegerField(null=True, blank=True)
    alert_amount = models.BigIntegerField(null=True, blank=True)
    # A subscription paid from this wallet has an unpaid fee: the ledger's statement returns it,
    # so that a credit asks for the fee to be paid without a query of its own.
    owes_fees = models.BooleanField(default=False)
    # Rated usage this prepaid wallet could not pay at its floor (nanos): the next credit pays
    # it (billing/usage/collect.py); the ledger's statement returns whether there is any.
    usage_owed = models.BigIntegerField(default=0)
    # The last ledger entry its credit lots are counted through (billing/expiry/lots.py): the
    # lots are brought up to date after the fact, so a debit writes nothing to them.
    lots_counted_through = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["billing_account", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["billing_account", "currency"], name="wallet_one_per_currency"
            )
        ]
        # The hourly collection of owed usage reads only the few wallets that owe.
        indexes = [
            models.Index(
                fields=["id"], condition=models.Q(usage_owed__gt=0), name="wallet_owes_usage"
            )
        ]

    balance_money = MoneyProperty("balance")
    usage_owed_money = MoneyProperty("usage_owed")

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

    wallet = models.ForeignKey(
        Wallet,
        on_delete=models.PROTECT,
        related_name="entries",
        db_index=False,  # ledger_wallet_recent (wallet, -id) serves every lookup by wallet
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount = models.BigIntegerField()  # signed nanos: positive credits, negative debits
    balance_after = models.BigIntegerField()
    # The idempotency key: a transaction id, Stripe id or a generated one; applied at most once
    # (the constraint below: unique=True would add a second index for LIKE, which no query uses).
    transaction_id = models.CharField(max_length=255)
    actor_type = models.CharField(max_length=6, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_token = models.ForeignKey(
        "accounts.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    memo = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    # The credit lot a refund, dispute or expiry takes from (or gives back to) before any
    # other; None for everything else, which takes the lot that expires first.
    lot = models.ForeignKey(
        "billing.CreditLot",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # never looked up by it; the hot insert keeps one index fewer
    )

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            # The name PostgreSQL gave it when the field itself was unique.
            models.UniqueConstraint(
                fields=["transaction_id"], name="billing_ledgerentry_transaction_id_key"
            ),
        ]
        indexes = [
            models.Index(fields=["wallet", "-id"], name="ledger_wallet_recent"),
            # A wallet's last top-up, found in one step however many debits followed it.
            models.Index(
                fields=["wallet", "-id"],
                condition=models.Q(kind="TOP_UP"),
                name="ledger_wallet_top_ups",
            ),
            # An account's plan fees ("My plans"), without reading its usage debits.
            models.Index(
                fields=["wallet", "-id"], condition=models.Q(kind="FEE"), name="ledger_wallet_fees"
            ),
        ]

    amount_money = MoneyProperty("amount", currency="wallet.currency")
    balance_after_money = MoneyProperty("balance_after", currency="wallet.currency")

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} ({self.transaction_id})"
