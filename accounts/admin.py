from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import ApiToken, User
from accounts.services import api_token_revoke
from billing.audit import audit_log
from billing.models import BillingAccount


class BillingAccountInlineForm(forms.ModelForm):
    def save(self, commit: bool = True) -> BillingAccount:
        if not commit or self.instance._state.adding:
            return super().save(commit)
        # Only the fields the admin changed: a whole-row save wrote back the card, customer and
        # billing type as this form read them, undoing a card saved or a billing type changed
        # by someone else meanwhile.
        self.instance.save(update_fields=self.changed_data)
        return self.instance


class BillingAccountInline(admin.StackedInline):
    model = BillingAccount
    form = BillingAccountInlineForm
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

    def save_formset(self, request, form, formset, change) -> None:  # type: ignore[no-untyped-def]
        """A trust tier raises what a developer may add: audit who changed it, from what."""
        before = {f.instance.pk: f.initial.get("trust_tier") for f in formset.forms}
        super().save_formset(request, form, formset, change)
        for inline in formset.forms:
            account = inline.instance
            if isinstance(account, BillingAccount) and "trust_tier" in inline.changed_data:
                audit_log(
                    actor=request.user,
                    action="billing_account.trust_tier.set",
                    target_user=account.user,
                    before=before.get(account.pk),
                    after=account.trust_tier,
                )

    @admin.display(description="billing type", ordering="billing_account__billing_type")
    def billing_type(self, user: User) -> str:
        account = getattr(user, "billing_account", None)
        if account is None or not account.billing_type:
            return "Not specified"
        return account.get_billing_type_display()


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made with `manage.py create_api_token`; here they are listed and revoked."""

    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__email", "name", "prefix"]
    list_select_related = ["user"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        revoked = 0
        for token in queryset.select_related("user"):
            if api_token_revoke(token=token, actor=request.user):
                self.log_change(request, token, "Revoked")
                revoked += 1
        self.message_user(request, f"Revoked {revoked} token(s).")
