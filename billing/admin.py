from __future__ import annotations

from decimal import Decimal

from django.contrib import admin
from django.utils.html import format_html

from billing.models import (
    AuditLogEntry,
    BillingTypeChange,
    OrganizationSettings,
    StripeEvent,
    TopUp,
)
from billing.money import Money, money_format


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is append-only: visible in the admin, never edited there."""

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(BillingTypeChange)
class BillingTypeChangeAdmin(ReadOnlyAdmin):
    list_display = [
        "changed_at",
        "billing_account",
        "old_billing_type",
        "new_billing_type",
        "source",
        "changed_by",
    ]
    list_filter = ["source", "new_billing_type"]
    search_fields = ["billing_account__user__email"]
    list_select_related = ["billing_account__user", "changed_by"]


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "summary", "actor", "target_user"]
    list_filter = ["action"]
    date_hierarchy = "created_at"
    search_fields = ["actor__email", "target_user__email", "action"]
    list_select_related = ["actor", "target_user"]
    fields = ["created_at", "action", "actor", "target_user", "details", "data"]

    @admin.display(description="what", ordering="action")
    def summary(self, entry: AuditLogEntry) -> str:
        """The action, then its details cut short; the whole of it on the entry's own page."""
        text = audit_details(entry.data)
        if len(text) > SUMMARY_LENGTH:
            text = text[: SUMMARY_LENGTH - 1] + "…"
        return format_html("<strong>{}</strong><br>{}", entry.action, text)

    @admin.display(description="details")
    def details(self, entry: AuditLogEntry) -> str:
        return audit_details(entry.data)


SUMMARY_LENGTH = 160


def audit_details(data: object, currency: str | None = None) -> str:
    """An audit entry's data as people read it: amounts in money ("balance after: $12.50"), not
    nanos; "USD 5.00 to 500.00, default 10.00" for Add credit limits."""
    if isinstance(data, list):
        return "; ".join(audit_details(item, currency) for item in data) or "none"
    if isinstance(data, bool):
        return "yes" if data else "no"
    if not isinstance(data, dict):
        return "—" if data is None or data == "" else str(data)
    currency = data.get("currency", currency)
    if {"minimum", "maximum", "default"} <= data.keys():
        return (
            f"{currency} {_amount(data['minimum'], currency)} to "
            f"{_amount(data['maximum'], currency)}, default {_amount(data['default'], currency)}"
        )
    parts = []
    for key in sorted(data, key=_reading_order):
        value = data[key]
        if key == "currency" and not isinstance(value, dict | list):
            continue
        label = key.removesuffix("_nanos").replace("_", " ")
        if key.endswith("_nanos") and isinstance(value, int):
            parts.append(f"{label}: {_amount(value, currency)}")
        elif isinstance(value, dict | list):
            parts.append(f"{label}: ({audit_details(value, currency)})")
        else:
            parts.append(f"{label}: {audit_details(value, currency)}")
    if currency and "currency" in data:
        parts.insert(0, f"currency: {currency}")
    return ", ".join(parts)


# PostgreSQL keeps JSON keys in its own order: show the telling ones first, the rest A to Z.
_FIRST = ["old", "new", "enabled", "change_nanos", "amount_nanos", "threshold_nanos", "mode"]


def _reading_order(key: str) -> tuple[int, str]:
    return (_FIRST.index(key), "") if key in _FIRST else (len(_FIRST), key)


def _amount(nanos: int, currency: str | None) -> str:
    if currency:
        return money_format(Money(nanos, currency))
    return format(Decimal(nanos).scaleb(-9).normalize(), "f")  # a grace: in each currency's units


@admin.register(OrganizationSettings)
class OrganizationSettingsAdmin(ReadOnlyAdmin):
    # Changed on the Monetization settings page, which counts and logs who is affected.
    list_display = ["__str__", "default_billing_type", "updated_at"]


class AddCreditLogPermission:
    """Viewable with "View Add Credit Log"; records change only through Stripe's events."""

    permission = "billing.view_add_credit_log"

    def has_module_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm(self.permission) or super().has_module_permission(request)  # type: ignore[misc]

    def has_view_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm(self.permission)


@admin.register(TopUp)
class AddCreditLogAdmin(AddCreditLogPermission, ReadOnlyAdmin):
    list_display = [
        "created_at",
        "developer",
        "amount_display",
        "state",
        "source",
        "flagged",
        "stripe_checkout_session_id",
        "stripe_payment_intent_id",
        "ledger_transaction_id",
    ]
    list_filter = ["state", "source", "currency", "flagged", "created_at"]
    search_fields = [
        "billing_account__user__email",
        "stripe_checkout_session_id",
        "stripe_payment_intent_id",
        "ledger_transaction_id",
        "public_id",
    ]
    list_select_related = ["billing_account__user"]
    list_per_page = 50
    date_hierarchy = "created_at"
    # Amounts as money, not raw nanos; every field read-only (Stripe's events change top-ups).
    readonly_fields = fields = (
        "public_id",
        "developer",
        "amount_display",
        "refunded_amount_display",
        "refund_failed_amount_display",
        "state",
        "source",
        "failure_reason",
        "flagged",
        "flag_reason",
        "stripe_checkout_session_id",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "ledger_transaction_id",
        "checkout_url",
        "created_at",
        "succeeded_at",
        "updated_at",
    )

    @admin.display(description="developer", ordering="billing_account__user__email")
    def developer(self, top_up: TopUp) -> str:
        return top_up.billing_account.user.email

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, top_up: TopUp) -> str:
        return money_format(top_up.money)

    @admin.display(description="refunded", ordering="refunded_amount")
    def refunded_amount_display(self, top_up: TopUp) -> str:
        return money_format(top_up.refunded_money)

    @admin.display(description="refunds failed (given back)", ordering="refund_failed_amount")
    def refund_failed_amount_display(self, top_up: TopUp) -> str:
        return money_format(top_up.refund_failed_money)


@admin.register(StripeEvent)
class StripeEventAdmin(AddCreditLogPermission, ReadOnlyAdmin):
    list_display = ["received_at", "id", "type", "status", "attempts", "processed_at"]
    list_filter = ["status", "type"]
    search_fields = ["id", "type"]
