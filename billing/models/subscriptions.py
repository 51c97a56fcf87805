from __future__ import annotations

import uuid

from django.db import models

from billing.models.billing_accounts import BillingAccount
from billing.models.catalog import ApiProduct, RatePlan


class Subscription(models.Model):
    """A developer's purchase of an API product on a rate plan (Apigee X developer
    subscription): Future before its start, Active from it, Ended once expired. At most one is
    open (not ended) per developer and product; the plan it was bought on stays its price."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    billing_account = models.ForeignKey(
        BillingAccount, on_delete=models.PROTECT, related_name="subscriptions"
    )
    product = models.ForeignKey(ApiProduct, on_delete=models.PROTECT, related_name="+")
    rate_plan = models.ForeignKey(RatePlan, on_delete=models.PROTECT, related_name="subscriptions")
    start_time = models.DateTimeField()
    end_time = models.DateTimeField(null=True, blank=True)  # set when it is expired (cancelled)
    # The buyer's key for this purchase (a form's hidden field, the API's Idempotency-Key): a
    # double click, a second tab or a retry buys once.
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    # A fee the prepaid wallet could not pay: since when, and which period's. The limits check
    # refuses calls until the next credit pays it.
    unpaid_since = models.DateTimeField(null=True, blank=True)
    unpaid_period = models.CharField(max_length=7, blank=True, default="")  # YYYY-MM
    # When the next fee falls due (the start, then the 1st of each due month); None once ended.
    # The fee run reads only the subscriptions this has reached, however many there are.
    next_charge_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start_time", "-id"]
        permissions = [
            ("purchase_any_rate_plan", "Purchase any rate plan"),
            ("view_any_purchased_plan", "View any purchased plan"),
            ("update_any_purchased_plan", "Update any purchased plan"),
        ]
        indexes = [
            models.Index(
                fields=["next_charge_at"],
                condition=models.Q(next_charge_at__isnull=False),
                name="subscription_fee_due",
            ),
            models.Index(
                fields=["billing_account"],
                condition=models.Q(unpaid_since__isnull=False),
                name="subscription_unpaid",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["billing_account", "product"],
                condition=models.Q(end_time__isnull=True),
                name="one_open_subscription_per_product",
            ),
            models.UniqueConstraint(
                fields=["billing_account", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="subscription_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product} for {self.billing_account.user}"

    def status(self, now: object) -> str:
        """Future, Active, Unpaid or Ended, as the pages and the limits check read it."""
        if self.end_time is not None and self.end_time <= now:  # type: ignore[operator]
            return "Ended"
        if self.start_time > now:  # type: ignore[operator]
            return "Future"
        return "Unpaid" if self.unpaid_since else "Active"
