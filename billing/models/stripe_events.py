from __future__ import annotations

from django.db import models


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
