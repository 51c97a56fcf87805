from __future__ import annotations

from django.contrib import admin

from billing.models import (
    AuditLogEntry,
    BillingTypeChange,
    OrganizationSettings,
    StripeEvent,
    TopUp,
)
from billing.money import money_format


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
    list_display = ["created_at", "action", "actor", "target_user", "data"]
    list_filter = ["action"]
    date_hierarchy = "created_at"
    search_fields = ["actor__email", "target_user__email", "action"]
    list_select_related = ["actor", "target_user"]


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
