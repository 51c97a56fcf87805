from __future__ import annotations

from django.db import models


class SentNotification(models.Model):
    """An email that must go out once (a receipt; later alerts), whatever asks for it how
    often, and that must not be lost.

    The row is written when the email becomes owed, in the transaction that makes it so (the
    credit, the refund): a worker sends it after the commit, or the beat's sweep does if that
    worker's task was lost. Sending starts with a claim, one conditional UPDATE of
    `claimed_at`, so that of two senders exactly one sends. An email the mail server refused
    gives its claim back; a claim left unsent long after it was made (its worker died) may be
    taken over. `sent_at` is set once the mail server has taken the email.
    """

    class Kind(models.TextChoices):
        TOP_UP_RECEIPT = "TOP_UP_RECEIPT", "Top-up receipt"
        REFUND_RECEIPT = "REFUND_RECEIPT", "Refund receipt"
        DISPUTE_RECEIPT = "DISPUTE_RECEIPT", "Dispute receipt"
        FEE_UNPAID = "FEE_UNPAID", "Unpaid fee"
        BALANCE_ALERT = "BALANCE_ALERT", "Low balance alert"
        CREDIT_EXPIRY = "CREDIT_EXPIRY", "Credit expiry warning"

    # What was notified of, once: e.g. "receipt:top-up:<the top-up's public id>".
    key = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    # What its sender is given: a top-up's id, a ledger transaction id.
    reference = models.CharField(max_length=255)
    recipient = models.CharField(max_length=254, blank=True, default="")  # once sent
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sweep's question, "what is owed and not sent?", stays small however many
            # notifications were sent.
            models.Index(
                fields=["created_at"],
                condition=models.Q(sent_at__isnull=True),
                name="notification_unsent",
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} ({'sent' if self.sent_at else 'not sent'})"


class BalanceAlert(models.Model):
    """A prepaid wallet's balance fell to one of its alert thresholds, once per crossing: the
    thresholds are armed by the wallet's last top-up (`top_up_entry_id`), so the next top-up
    re-arms them. Shown as a banner until dismissed or topped up; emailed once."""

    wallet = models.ForeignKey("billing.Wallet", on_delete=models.PROTECT, related_name="alerts")
    top_up_entry_id = models.BigIntegerField()  # the ledger entry of the top-up that armed it
    threshold = models.CharField(max_length=30)  # "50%", or "amount" (the developer's own)
    threshold_nanos = models.BigIntegerField()
    balance_nanos = models.BigIntegerField()  # when it was found crossed
    burn_rate_nanos = models.BigIntegerField()  # average daily spend over the last 7 days
    created_at = models.DateTimeField(auto_now_add=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["wallet", "top_up_entry_id", "threshold"], name="balance_alert_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.threshold} of wallet {self.wallet_id}"
