from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from billing.money import MoneyProperty


class ApiProduct(models.Model):
    """What is sold: a bundle of API access, optionally with a quota of calls per period."""

    class QuotaTimeUnit(models.TextChoices):
        MINUTE = "minute", "minute"
        HOUR = "hour", "hour"
        DAY = "day", "day"
        MONTH = "month", "month"

    # Apigee's product name: a slug, unique, used in paths (`apiproducts/{name}`).
    name = models.SlugField(max_length=100, unique=True)
    display_name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # `quota` calls per `quota_interval` × `quota_time_unit`; None: no quota.
    quota = models.PositiveIntegerField(null=True, blank=True)
    quota_interval = models.PositiveIntegerField(default=1)
    quota_time_unit = models.CharField(
        max_length=6, choices=QuotaTimeUnit.choices, default=QuotaTimeUnit.MONTH
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["display_name", "name"]
        verbose_name = "API product"

    def __str__(self) -> str:
        return self.display_name or self.name


class RatePlan(models.Model):
    """The price of one product in one currency (Apigee X RatePlan). A published plan in force
    is never edited in place once bought: a change is a new plan from a later start."""

    class State(models.TextChoices):
        DRAFT = "DRAFT", "Draft"
        PUBLISHED = "PUBLISHED", "Published"

    class ConsumptionPricing(models.TextChoices):
        FIXED_PER_UNIT = "FIXED_PER_UNIT", "Fixed per unit"
        BANDED = "BANDED", "Banded"

    class RevenueShare(models.TextChoices):
        FIXED = "FIXED", "Fixed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    product = models.ForeignKey(ApiProduct, on_delete=models.PROTECT, related_name="rate_plans")
    display_name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    billing_period = models.CharField(max_length=10, default="MONTHLY")
    currency = models.CharField(max_length=3)
    setup_fee_nanos = models.BigIntegerField(default=0)
    recurring_fee_nanos = models.BigIntegerField(default=0)
    # The recurring fee is charged every this many months (1: monthly).
    fee_frequency_months = models.PositiveSmallIntegerField(default=1)
    # Empty: no consumption fees.
    consumption_pricing_type = models.CharField(
        max_length=14, choices=ConsumptionPricing.choices, blank=True, default=""
    )
    # [{"start": int, "end": int (0: no end), "fee_nanos": int}], ordered; a band prices the
    # calls numbered greater than `start` up to `end` in a month. FIXED_PER_UNIT has one band.
    consumption_rates = models.JSONField(default=list, blank=True)
    revenue_share_type = models.CharField(
        max_length=5, choices=RevenueShare.choices, blank=True, default=""
    )
    # [{"start": int, "end": int, "share_percentage": "12.5"}]: percentages as decimal text.
    revenue_share_rates = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=9, choices=State.choices, default=State.DRAFT)
    start_time = models.DateTimeField(default=timezone.now)
    end_time = models.DateTimeField(null=True, blank=True)  # None: no end
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    setup_fee = MoneyProperty("setup_fee_nanos")
    recurring_fee = MoneyProperty("recurring_fee_nanos")

    class Meta:
        ordering = ["product", "start_time", "id"]
        permissions = [("view_rate_plan", "View rate plan")]
        indexes = [
            models.Index(fields=["product", "state", "start_time"], name="rate_plan_in_force")
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(setup_fee_nanos__gte=0)
                & models.Q(recurring_fee_nanos__gte=0)
                & models.Q(fee_frequency_months__gte=1),
                name="rate_plan_fees_not_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(end_time__isnull=True)
                | models.Q(end_time__gt=models.F("start_time")),
                name="rate_plan_ends_after_it_starts",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product}: {self.display_name}"

    def in_force(self, at: object) -> bool:
        return (
            self.state == self.State.PUBLISHED
            and self.start_time <= at  # type: ignore[operator]
            and (self.end_time is None or at < self.end_time)  # type: ignore[operator]
        )
