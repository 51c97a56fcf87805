from __future__ import annotations

from django.contrib import admin

from billing.models import AuditLogEntry, BillingTypeChange, OrganizationSettings


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
    search_fields = ["actor__email", "target_user__email", "action"]
    list_select_related = ["actor", "target_user"]


@admin.register(OrganizationSettings)
class OrganizationSettingsAdmin(ReadOnlyAdmin):
    # Changed on the Monetization settings page, which counts and logs who is affected.
    list_display = ["__str__", "default_billing_type", "updated_at"]
