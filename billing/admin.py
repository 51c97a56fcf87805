from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.models import User
from billing.catalog.rates import Band, ShareRate, share_percentage_parse
from billing.catalog.selectors import rate_plans_of
from billing.catalog.services import (
    PlanSpec,
    ProductSpec,
    api_product_create,
    api_product_delete,
    api_product_update,
    rate_plan_create,
    rate_plan_delete,
    rate_plan_update,
)
from billing.exceptions import BillingError
from billing.models import (
    ApiProduct,
    AuditLogEntry,
    BillingTypeChange,
    OrganizationSettings,
    RatePlan,
    StripeEvent,
    Subscription,
    TopUp,
)
from billing.money import (
    Money,
    MoneyError,
    currency_decimals,
    currency_validate,
    money_format,
    money_from_input,
    money_parse,
)


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


# ---- Selling API access: API products, rate plans, subscriptions ----


class AdministerMonetization:
    """API products and rate plans: for "Administer monetization" (the permission the API asks
    for the same changes), whatever the model permissions say."""

    permission = "billing.administer_monetization"

    def has_module_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm(self.permission) or super().has_module_permission(request)  # type: ignore[misc]

    def has_view_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm(self.permission)

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm(self.permission)

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm(self.permission)

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm(self.permission)


class CatalogForm(forms.ModelForm):
    """An admin form whose row the catalog service writes, so the admin refuses what the API
    refuses, in the same words, and every change is audited. The form only parses; the
    service decides."""

    actor: User | None = None  # the admin's user, set per request by `CatalogAdmin.get_form`
    saved: Any = None  # the row the service wrote

    def _post_clean(self) -> None:
        # Where a model form would copy the fields onto the row and validate the model, the
        # service checks and saves, inside the admin's transaction: its refusal becomes the
        # form's error and nothing is written.
        if self.errors:
            return
        try:
            self.saved = self.service_save()
        except BillingError as exc:
            self.add_error(None, str(exc))

    def service_save(self) -> Any:
        raise NotImplementedError


class CatalogAdmin(AdministerMonetization, admin.ModelAdmin):
    """Saves and deletes through the catalog services, never the model's own `save()`."""

    def get_form(self, request, obj=None, change=False, **kwargs):  # type: ignore[no-untyped-def]
        form = super().get_form(request, obj, change, **kwargs)

        class FormForRequest(form):  # type: ignore[valid-type,misc]
            actor = request.user

        return FormForRequest

    def get_actions(self, request):  # type: ignore[no-untyped-def]
        # One at a time, through the service, which may refuse (a plan somebody bought stays).
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_form(self, request, form, change):  # type: ignore[no-untyped-def]
        return form.saved

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        """The service saved it while the form was checked."""

    def save_related(self, request, form, formsets, change) -> None:  # type: ignore[no-untyped-def]
        """No inlines, nothing many-to-many: nothing else to save."""

    def delete_view(self, request, object_id, extra_context=None):  # type: ignore[no-untyped-def]
        try:
            return super().delete_view(request, object_id, extra_context)
        except BillingError as exc:  # the service refused: nothing was deleted
            self.message_user(request, str(exc), messages.ERROR)
            return redirect(
                reverse(
                    f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                    args=[object_id],
                )
            )


class ApiProductAdminForm(CatalogForm):
    class Meta:
        model = ApiProduct
        fields = [
            "name",
            "display_name",
            "description",
            "quota",
            "quota_interval",
            "quota_time_unit",
        ]
        help_texts = {
            "name": "A slug, e.g. weather-api: it is in the API's paths, so it cannot change.",
            "quota": "Calls allowed per period (below); empty: no quota.",
            "quota_interval": "The period: this many of the time unit below.",
        }

    def service_save(self) -> ApiProduct:
        data = self.cleaned_data
        product = self.instance if self.instance.pk else None
        spec = ProductSpec(
            name=product.name if product else data["name"],
            display_name=data["display_name"],
            description=data["description"],
            quota=data["quota"],
            quota_interval=data["quota_interval"],
            quota_time_unit=data["quota_time_unit"],
        )
        if product is None:
            return api_product_create(spec=spec, actor=self.actor)
        return api_product_update(product=product, spec=spec, actor=self.actor)


@admin.register(ApiProduct)
class ApiProductAdmin(CatalogAdmin):
    form = ApiProductAdminForm
    list_display = ["display_name", "name", "quota_display", "plans_display"]
    search_fields = ["name", "display_name"]

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return (
            super()
            .get_queryset(request)
            .annotate(
                plan_count=Count("rate_plans"),
                published_count=Count(
                    "rate_plans", filter=Q(rate_plans__state=RatePlan.State.PUBLISHED)
                ),
            )
        )

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return ["name", "rate_plans_display"] if obj else []

    def get_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        fields = [*ApiProductAdminForm.Meta.fields]
        return [*fields, "rate_plans_display"] if obj else fields

    @admin.display(description="quota")
    def quota_display(self, product: ApiProduct) -> str:
        if product.quota is None:
            return "none"
        unit = product.get_quota_time_unit_display()
        period = unit if product.quota_interval == 1 else f"{product.quota_interval} {unit}s"
        return f"{product.quota:,} calls per {period}"

    @admin.display(description="rate plans")
    def plans_display(self, product: ApiProduct) -> str:
        count = product.plan_count  # type: ignore[attr-defined]
        return f"{count} ({product.published_count} published)"  # type: ignore[attr-defined]

    def delete_model(self, request, obj) -> None:  # type: ignore[no-untyped-def]
        api_product_delete(product=obj, actor=request.user)

    def get_deleted_objects(self, objs, request):  # type: ignore[no-untyped-def]
        """The service deletes a product with its rate plans, unless somebody bought it (then
        the subscriptions are listed as what stops it)."""
        deleted: list[Any] = []
        plan_count = 0
        for product in objs:
            plans = [f"Rate plan: {plan.display_name}" for plan in product.rate_plans.all()]
            plan_count += len(plans)
            deleted += [f"API product: {product}", plans] if plans else [f"API product: {product}"]
        bought = Subscription.objects.filter(rate_plan__product__in=objs).select_related(
            "product", "billing_account__user"
        )
        protected = [f"Subscription: {subscription}" for subscription in bought]
        counts = {"API products": len(objs), "rate plans": plan_count}
        return deleted, counts, set(), protected

    @admin.display(description="rate plans")
    def rate_plans_display(self, product: ApiProduct) -> str:
        plans = rate_plans_of(product=product, published_only=False).annotate(
            subscriber_count=Count("subscriptions")
        )
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td></tr>",
            (
                (
                    reverse("admin:billing_rateplan_change", args=[plan.pk]),
                    plan.display_name,
                    plan.get_state_display(),
                    _fees_summary(plan),
                    _when(plan.start_time),
                    _when(plan.end_time) if plan.end_time else "no end",
                    plan.subscriber_count,  # type: ignore[attr-defined]
                )
                for plan in plans
            ),
        )
        add = reverse("admin:billing_rateplan_add") + f"?product={product.pk}"
        table = (
            format_html(
                "<table><thead><tr><th>plan</th><th>state</th><th>fees</th><th>from</th>"
                "<th>to</th><th>subscribers</th></tr></thead><tbody>{}</tbody></table>",
                rows,
            )
            if plans
            else "No rate plans yet."
        )
        return format_html("{}<p><a class='addlink' href='{}'>Add a rate plan</a></p>", table, add)


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _amount_text(money: Money) -> str:
    """An amount for a form field, with the currency's decimals at least: "10.00", "0.015"."""
    places = currency_decimals(money.currency)
    value = money.decimal.normalize()
    if -value.as_tuple().exponent < places:  # type: ignore[operator]
        value = value.quantize(Decimal(1).scaleb(-places))
    return format(value, "f")


def _band_ranges(plan: RatePlan) -> list[tuple[dict[str, Any], str]]:
    return [
        (rate, f"{rate['start']}-{rate['end']}" if rate["end"] else f"{rate['start']}-")
        for rate in plan.consumption_rates
    ]


def _consumption_summary(plan: RatePlan) -> str:
    if not plan.consumption_pricing_type:
        return "none"
    bands = format_html_join(
        "",
        "<br>calls {}: {}",
        (
            (
                f"{rate['start']}-{rate['end']}" if rate["end"] else f"over {rate['start']}",
                money_format(Money(rate["fee_nanos"], plan.currency)),
            )
            for rate in plan.consumption_rates
        ),
    )
    return format_html("{} per call:{}", plan.get_consumption_pricing_type_display(), bands)


def _fees_summary(plan: RatePlan) -> str:
    every = "month" if plan.fee_frequency_months == 1 else f"{plan.fee_frequency_months} months"
    return format_html(
        "setup {}<br>{} every {}",
        money_format(plan.setup_fee),
        money_format(plan.recurring_fee),
        every,
    )


def _share_summary(plan: RatePlan) -> str:
    if not plan.revenue_share_type:
        return "none"
    shares = ", ".join(f"{rate['share_percentage']} %" for rate in plan.revenue_share_rates)
    return f"{plan.get_revenue_share_type_display()} {shares}"


# "start-end: fee" per line; no end (or 0): every call after start. En dashes are welcome.
_BAND_LINE = re.compile(r"(?P<start>[0-9]{1,15})\s*[-–]\s*(?P<end>[0-9]{0,15})\s*:\s*(?P<fee>.+)")
BAND_FORMAT = "“start-end: fee per call”, e.g. “100-200: 0.015” (no end: “200-: 0.01”)"


def bands_parse(text: str, currency: str) -> list[Band]:
    """The consumption bands as typed, one a line; the catalog's rules check them after."""
    bands = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _BAND_LINE.fullmatch(line.strip())
        if match is None:
            raise ValidationError(f"Line {n}: write {BAND_FORMAT}.")
        try:
            fee = money_parse(match["fee"], currency)
        except MoneyError as exc:
            raise ValidationError(f"Line {n}: {exc}") from None
        bands.append(Band(int(match["start"]), int(match["end"] or 0), fee.nanos))
    return bands


class RatePlanAdminForm(CatalogForm):
    setup_fee = forms.CharField(
        label="Setup fee", max_length=40, help_text="In the plan's currency, e.g. 10.00."
    )
    recurring_fee = forms.CharField(
        label="Recurring fee",
        max_length=40,
        help_text="In the plan's currency, charged every fee frequency (below), e.g. 5.00.",
    )
    consumption_rates = forms.CharField(
        label="Consumption fees",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 40}),
        help_text=(
            f"One band a line, {BAND_FORMAT}: a band prices the calls numbered greater than its "
            "start, up to its end, counted per subscription per calendar month; each band "
            "starts where the one before ends. Fixed per unit: one line, “0-: fee”."
        ),
    )
    revenue_share = forms.CharField(
        label="Revenue share (%)",
        required=False,
        max_length=40,
        help_text="A fixed share of the revenue, from 0 to 100, e.g. 15; empty: none.",
    )

    class Meta:
        model = RatePlan
        fields = [
            "product",
            "display_name",
            "description",
            "state",
            "start_time",
            "end_time",
            "currency",
            "setup_fee",
            "recurring_fee",
            "fee_frequency_months",
            "consumption_pricing_type",
            "consumption_rates",
            "revenue_share",
        ]
        labels = {"fee_frequency_months": "Fee frequency (months)"}
        widgets = {"currency": forms.TextInput(attrs={"size": 4})}
        help_texts = {
            "currency": "ISO 4217, e.g. USD: every fee of the plan is in it.",
            "start_time": "UTC. A plan somebody bought changes only from a future start.",
            "end_time": "UTC; empty: no end.",
            "state": "Developers see and buy only a published plan in force.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plan = self.instance
        if plan.pk:
            self.initial["setup_fee"] = _amount_text(plan.setup_fee)
            self.initial["recurring_fee"] = _amount_text(plan.recurring_fee)
            self.initial["consumption_rates"] = "\n".join(
                f"{calls}: {_amount_text(Money(rate['fee_nanos'], plan.currency))}"
                for rate, calls in _band_ranges(plan)
            )
            shares = plan.revenue_share_rates
            self.initial["revenue_share"] = shares[0]["share_percentage"] if shares else ""
        else:
            self.initial.setdefault("currency", "USD")
            self.initial.setdefault("setup_fee", "0.00")
            self.initial.setdefault("recurring_fee", "0.00")

    def clean_currency(self) -> str:
        return self.cleaned_data["currency"].strip().upper()

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        currency = data.get("currency", "")
        try:
            currency_validate(currency)
        except MoneyError as exc:
            if currency:
                self.add_error("currency", str(exc))
            return data  # amounts cannot be read without it
        for name in ("setup_fee", "recurring_fee"):
            if name in data:
                try:
                    data[name] = money_from_input(data[name], currency)
                except MoneyError as exc:
                    self.add_error(name, str(exc))
        try:
            data["bands"] = bands_parse(data.get("consumption_rates", ""), currency)
        except ValidationError as exc:
            self.add_error("consumption_rates", exc)
        share = data.get("revenue_share", "").removesuffix("%").strip()
        try:
            data["share_rates"] = self._share_rates(share)
        except BillingError as exc:
            self.add_error("revenue_share", str(exc))
        return data

    def _share_rates(self, text: str) -> list[ShareRate]:
        if not text:
            return []
        percentage = share_percentage_parse(text, "Revenue share")
        # An API-made plan's one rate keeps its range; only the percentage is edited here.
        old = self.instance.revenue_share_rates[:1] or [{"start": 0, "end": 0}]
        return [ShareRate(old[0]["start"], old[0]["end"], percentage)]

    def service_save(self) -> RatePlan:
        data = self.cleaned_data
        spec = PlanSpec(
            display_name=data["display_name"],
            currency=data["currency"],
            description=data["description"],
            setup_fee=data["setup_fee"],
            recurring_fee=data["recurring_fee"],
            fee_frequency_months=data["fee_frequency_months"],
            consumption_pricing_type=data["consumption_pricing_type"],
            bands=data["bands"],
            revenue_share_type=RatePlan.RevenueShare.FIXED if data["share_rates"] else "",
            share_rates=data["share_rates"],
            state=data["state"],
            start_time=data["start_time"],
            end_time=data["end_time"],
        )
        if self.instance.pk:
            return rate_plan_update(plan=self.instance, spec=spec, actor=self.actor)
        return rate_plan_create(product=data["product"], spec=spec, actor=self.actor)


@admin.register(RatePlan)
class RatePlanAdmin(CatalogAdmin):
    form = RatePlanAdminForm
    list_display = [
        "display_name",
        "product",
        "state",
        "fees_display",
        "consumption_display",
        "revenue_share_display",
        "start_time",
        "end_time",
        "subscriber_count",
    ]
    list_filter = ["state", "currency", "product"]
    search_fields = ["display_name", "product__name", "product__display_name"]
    list_select_related = ["product"]
    fieldsets = [
        (None, {"fields": ["product", "display_name", "description", "state"]}),
        ("When", {"fields": ["start_time", "end_time"]}),
        (
            "Fees",
            {"fields": ["currency", "setup_fee", "recurring_fee", "fee_frequency_months"]},
        ),
        ("Consumption", {"fields": ["consumption_pricing_type", "consumption_rates"]}),
        ("Revenue share", {"fields": ["revenue_share"]}),
    ]

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).annotate(subscribers=Count("subscriptions"))

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        # A plan stays with its product; its buyers are counted, not edited, here.
        return ["product", "subscriber_count"] if obj else []

    def get_fieldsets(self, request, obj=None):  # type: ignore[no-untyped-def]
        fieldsets = super().get_fieldsets(request, obj)
        if obj:
            return [*fieldsets, ("Bought", {"fields": ["subscriber_count"]})]
        return fieldsets

    def delete_model(self, request, obj) -> None:  # type: ignore[no-untyped-def]
        rate_plan_delete(plan=obj, actor=request.user)

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        if change and obj.pk != form.instance.pk:
            self.message_user(
                request,
                f"“{form.instance.display_name}” has been bought, so its price does not change "
                f"under its buyers: the change is a new plan from {_when(obj.start_time)}, and "
                "the old one ends then.",
                messages.WARNING,
            )

    @admin.display(description="fees")
    def fees_display(self, plan: RatePlan) -> str:
        return _fees_summary(plan)

    @admin.display(description="consumption")
    def consumption_display(self, plan: RatePlan) -> str:
        return _consumption_summary(plan)

    @admin.display(description="revenue share")
    def revenue_share_display(self, plan: RatePlan) -> str:
        return _share_summary(plan)

    @admin.display(description="subscribers", ordering="subscribers")
    def subscriber_count(self, plan: RatePlan) -> int:
        count = getattr(plan, "subscribers", None)
        return plan.subscriptions.count() if count is None else count


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    """Purchases change only through their services (buy, cancel, the fee run)."""

    list_display = [
        "developer",
        "product",
        "rate_plan",
        "status_display",
        "start_time",
        "end_time",
        "unpaid_since",
    ]
    list_filter = ["product"]
    search_fields = ["billing_account__user__email", "product__name", "public_id"]
    list_select_related = ["billing_account__user", "product", "rate_plan__product"]
    date_hierarchy = "start_time"

    @admin.display(description="developer", ordering="billing_account__user__email")
    def developer(self, subscription: Subscription) -> str:
        return subscription.billing_account.user.email

    @admin.display(description="status")
    def status_display(self, subscription: Subscription) -> str:
        return subscription.status(timezone.now())
