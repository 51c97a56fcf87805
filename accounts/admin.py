from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import User
from billing.models import BillingAccount


class BillingAccountInline(admin.StackedInline):
    model = BillingAccount
    can_delete = False
    # Billing type changes go through the Billing type tab so that each one is confirmed and logged.
    readonly_fields = ["billing_type", "stripe_customer_id", "created_at"]
    fields = [
        "billing_type",
        "legal_company_name",
        "trust_tier",
        "stripe_customer_id",
        "created_at",
    ]


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "billing_type", "is_staff", "date_joined"]
    list_filter = ["is_staff", "is_active", "billing_account__billing_type"]
    search_fields = ["email", "first_name", "last_name", "billing_account__legal_company_name"]
    list_select_related = ["billing_account"]
    inlines = [BillingAccountInline]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Name", {"fields": ("first_name", "last_name")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    @admin.display(description="billing type", ordering="billing_account__billing_type")
    def billing_type(self, user: User) -> str:
        account = getattr(user, "billing_account", None)
        if account is None or not account.billing_type:
            return "Not specified"
        return account.get_billing_type_display()
