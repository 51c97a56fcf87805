"""Reads for the portal-wide pages: People."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet, Value
from django.db.models.functions import Coalesce, NullIf

from accounts.models import User
from billing.billing_accounts.selectors import organization_settings_get
from billing.models import Wallet


def developers_list(*, search: str = "") -> QuerySet[User]:
    """Developers (not staff) with `effective_billing_type` and `own_billing_type` annotated,
    and their wallets prefetched (one query per page)."""
    default = organization_settings_get().default_billing_type
    people = (
        User.objects.filter(is_staff=False)
        .select_related("billing_account")
        .prefetch_related(
            Prefetch("billing_account__wallets", queryset=Wallet.objects.order_by("currency"))
        )
        .annotate(
            own_billing_type=Coalesce("billing_account__billing_type", Value("")),
            effective_billing_type=Coalesce(
                NullIf("billing_account__billing_type", Value("")), Value(default)
            ),
        )
        .order_by("last_name", "first_name", "email")
    )
    for word in search.split():
        people = people.filter(
            Q(email__icontains=word)
            | Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
            | Q(billing_account__legal_company_name__icontains=word)
        )
    return people
