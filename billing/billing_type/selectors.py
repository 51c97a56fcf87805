"""Reads of billing types: labels, counts and history."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from accounts.models import User
from billing.models import BillingAccount, BillingType, BillingTypeChange


def billing_type_label(*, account: BillingAccount, default: str) -> str:
    """How My Account names the billing type, e.g. "Not specified (defaults to Postpaid)"."""
    if account.billing_type:
        return BillingType(account.billing_type).label
    return f"Not specified (defaults to {BillingType(default).label})"


@dataclass(frozen=True)
class BillingTypeCounts:
    following_default: int
    prepaid: int
    postpaid: int

    def effective(self, default: str) -> dict[str, int]:
        """How many developers each billing type would cover if `default` were the default."""
        return {
            BillingType.PREPAID: self.prepaid
            + (self.following_default if default == BillingType.PREPAID else 0),
            BillingType.POSTPAID: self.postpaid
            + (self.following_default if default == BillingType.POSTPAID else 0),
        }


def billing_type_counts() -> BillingTypeCounts:
    developers = User.objects.filter(is_staff=False)
    counts = developers.aggregate(
        prepaid=Count("pk", filter=Q(billing_account__billing_type=BillingType.PREPAID)),
        postpaid=Count("pk", filter=Q(billing_account__billing_type=BillingType.POSTPAID)),
        total=Count("pk"),
    )
    return BillingTypeCounts(
        following_default=counts["total"] - counts["prepaid"] - counts["postpaid"],
        prepaid=counts["prepaid"],
        postpaid=counts["postpaid"],
    )


def billing_type_history(*, account: BillingAccount) -> QuerySet[BillingTypeChange]:
    return account.billing_type_changes.select_related("changed_by")
