from __future__ import annotations

import uuid

from django.db import models

from billing.models.billing_accounts import BillingAccount
from billing.models.catalog import ApiProduct


class DeveloperApp(models.Model):
    """A developer's app (Apigee X DeveloperApp): the products it may call, and the keys its
    calls carry."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)  # appId
    billing_account = models.ForeignKey(
        BillingAccount, on_delete=models.PROTECT, related_name="apps"
    )
    name = models.CharField(max_length=100)
    api_products = models.ManyToManyField(ApiProduct, related_name="+", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["billing_account", "name"], name="app_name_per_developer"
            )
        ]

    def __str__(self) -> str:
        return self.name


class AppKey(models.Model):
    """One API key of an app (Apigee's consumerKey). Only a SHA-256 hash is stored, looked up
    in one indexed read; the key itself is shown once, then only its prefix."""

    class Status(models.TextChoices):
        APPROVED = "approved", "Approved"
        REVOKED = "revoked", "Revoked"

    app = models.ForeignKey(DeveloperApp, on_delete=models.CASCADE, related_name="keys")
    prefix = models.CharField(max_length=16, unique=True)  # shown, and names the key in paths
    key_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.APPROVED)
    issued_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["issued_at", "id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.status})"
