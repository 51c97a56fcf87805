from __future__ import annotations

from django.db import models

from billing.models.catalog import RatePlan
from billing.models.ledger import LedgerEntry
from billing.models.subscriptions import Subscription


class UsageEvent(models.Model):
    """One monetized call reported by a gateway, rated once. Its client-made id is unique
    forever: the same id again is a duplicate, however late. The rating trace (plan, band,
    unit fee, multiplier, charge, the developer's share) stays with it for statements.

    The hottest table: a usage batch writes a thousand rows in one statement. So it has no
    index it does not read (the event id's unique index, not also a LIKE index; the
    subscription's through its month index) and no database foreign keys: each one is a
    trigger and a row lock per inserted row, checked at commit, and together they more than
    doubled a batch's time in the database. The one writer (billing/usage/ingest.py) has just
    read the subscription, plan and ledger entry in the same transaction, none of them is ever
    deleted while events name it (PROTECT, in the ORM), and `check_ledger` reports any event
    naming a row that is not there."""

    event_id = models.CharField(max_length=255)
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="+", db_constraint=False,
        db_index=False,
    )  # fmt: skip
    rate_plan = models.ForeignKey(
        RatePlan, on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    app_key_prefix = models.CharField(max_length=16)
    time = models.DateTimeField()
    month = models.CharField(max_length=7)  # YYYY-MM (UTC) of `time`: the band counts per month
    units = models.BigIntegerField(default=1)
    multiplier = models.CharField(max_length=40, default="1")  # decimal text, as sent
    # This event's calls are numbers first_call..first_call+units-1 of the subscription's month.
    first_call = models.BigIntegerField()
    unit_fee_nanos = models.BigIntegerField()  # of the band the event fell in (first band)
    charge_nanos = models.BigIntegerField()
    revenue_share_nanos = models.BigIntegerField(default=0)
    # The debit that carried it (one entry may carry many events of one batch and wallet).
    ledger_entry = models.ForeignKey(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        db_constraint=False, db_index=False,
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["time", "id"]
        # A gateway's user holds it (not the Portal admin group): limitsCheck and usage:batch.
        permissions = [("report_usage", "Report usage")]
        constraints = [models.UniqueConstraint(fields=["event_id"], name="usage_event_id")]
        indexes = [
            models.Index(fields=["subscription", "month"], name="usage_subscription_month"),
            models.Index(fields=["ledger_entry"], name="usage_ledger_entry"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} ({self.units} × {self.multiplier})"


class UsageCounter(models.Model):
    """Calls rated per subscription and period ("YYYY-MM" for bands, a quota window's start
    for quotas), moved by one atomic UPDATE, so that concurrent batches number calls exactly."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=32)
    calls = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "period"], name="usage_counter_period")
        ]

    def __str__(self) -> str:
        return f"{self.period}: {self.calls} calls"
