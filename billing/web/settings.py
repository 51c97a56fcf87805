"""The organisation's Monetization settings page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.utils.html import format_html
from django.views.decorators.http import require_http_methods

from accounts.access import PortalRequest, admin_required
from billing.billing_accounts.selectors import organization_settings_get
from billing.billing_accounts.services import (
    organization_purchase_terms_set,
    organization_statement_settings_set,
    organization_support_email_set,
)
from billing.billing_type.selectors import billing_type_counts
from billing.billing_type.services import organization_default_billing_type_set
from billing.exceptions import BillingError
from billing.expiry.services import credit_lifetime_set
from billing.models import BillingType, OrganizationSettings, TopUpLimit
from billing.money import Money
from billing.top_ups.selectors import CurrencyRemoval, top_up_currency_removals
from billing.top_ups.settings import organization_top_up_settings_update
from billing.web.billing_type import CHANGE_MEANING
from billing.web.forms import (
    OrganizationSettingsForm,
    PurchaseTermsForm,
    StatementSettingsForm,
    SupportForm,
    TopUpLimitFormSet,
    TopUpSettingsForm,
)

# The page's sections, by the `section` their form posts: each card's id is "section-<key>".
SECTIONS = {
    "billing_type": "Billing type",
    "top_ups": "Add credit",
    "purchase_terms": "Purchases",
    "statements": "Statements, low-balance alerts and credit expiry",
    "support": "Support",
}


@admin_required("billing.administer_monetization")
@require_http_methods(["GET", "HEAD", "POST"])
def monetization_settings(request: PortalRequest) -> HttpResponse:
    """Organisation settings: default billing type (its own form, as it moves developers), the
    Add credit settings with per-currency limits, the terms for purchases and the support
    email."""
    org = organization_settings_get()
    posted = request.POST if request.method == "POST" else None
    which = request.POST.get("section") if posted else None
    form = OrganizationSettingsForm(
        posted if which == "billing_type" else None,
        initial={"default_billing_type": org.default_billing_type},
    )
    top_up_form = TopUpSettingsForm(
        posted if which == "top_ups" else None,
        initial={
            "top_up_wait_seconds": org.top_up_wait_seconds,
            "prepaid_grace": Money(org.prepaid_grace_nanos, "USD").input_text,
            "notification_email": org.notification_email,
        },
    )
    limits = TopUpLimitFormSet(
        posted if which == "top_ups" else None, prefix="limits", initial=_limits_initial()
    )
    support_form = SupportForm(
        posted if which == "support" else None, initial={"support_email": org.support_email}
    )
    statement_form = StatementSettingsForm(
        posted if which == "statements" else None,
        initial={
            "balance_alert_percents": ", ".join(org.balance_alert_percents.split(",")),
            "billing_history_months": org.billing_history_months,
            "credit_lifetime_days": org.credit_lifetime_days,
        },
    )
    terms_form = PurchaseTermsForm(
        posted if which == "purchase_terms" else None,
        initial={"purchase_terms": org.purchase_terms},
    )
    if which == "purchase_terms" and terms_form.is_valid():
        changed = organization_purchase_terms_set(
            purchase_terms=terms_form.cleaned_data["purchase_terms"], changed_by=request.user
        )
        messages.success(
            request,
            "The terms and conditions for purchases have been saved."
            if changed
            else "Nothing changed.",
        )
        return redirect("monetization_settings")
    if which == "statements" and statement_form.is_valid():
        data = dict(statement_form.cleaned_data)
        lifetime_changed = credit_lifetime_set(
            days=data.pop("credit_lifetime_days"), changed_by=request.user
        )
        changed = organization_statement_settings_set(**data, changed_by=request.user)
        messages.success(
            request,
            "The statement, alert and credit expiry settings have been saved."
            if changed or lifetime_changed
            else "Nothing changed.",
        )
        return redirect("monetization_settings")
    if which == "support" and support_form.is_valid():
        changed = organization_support_email_set(
            support_email=support_form.cleaned_data["support_email"], changed_by=request.user
        )
        messages.success(
            request, "The support email has been saved." if changed else "Nothing changed."
        )
        return redirect("monetization_settings")
    if which == "billing_type" and form.is_valid():
        return _default_billing_type_save(request, org, form.cleaned_data["default_billing_type"])
    if which == "top_ups" and top_up_form.is_valid() and limits.is_valid():
        kept = [
            f.cleaned_data
            for f in limits.forms
            if f.has_changed() or f.initial
            if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        removals = top_up_currency_removals(kept=[limit["currency"] for limit in kept])
        if removals and "confirm" not in request.POST:
            return _top_up_currency_removal_confirm(request, removals)
        try:
            organization_top_up_settings_update(
                changed_by=request.user,
                top_up_wait_seconds=top_up_form.cleaned_data["top_up_wait_seconds"],
                prepaid_grace_nanos=top_up_form.cleaned_data["prepaid_grace"],
                notification_email=top_up_form.cleaned_data["notification_email"],
                limits=kept,
            )
        except BillingError as exc:  # the service's own checks, should a form ever miss one
            top_up_form.add_error(None, str(exc))
        else:
            messages.success(request, "The Add credit settings have been saved.")
            return redirect("monetization_settings")
    counts = billing_type_counts()
    invalid = (
        form.errors
        or top_up_form.errors
        or support_form.errors
        or statement_form.errors
        or terms_form.errors
        or any(limits.errors)
        or limits.non_form_errors()
    )
    if invalid:
        # The page is long: say which section holds the mistake, and link to it.
        messages.error(
            request,
            format_html(
                'Nothing was saved: correct what is marked in <a href="#section-{}">{}</a>.',
                which,
                SECTIONS[which],
            )
            if which in SECTIONS
            else "Nothing was saved: correct what is marked below.",
        )
    return render(
        request,
        "billing/settings/monetization_settings.html",
        {
            "form": form,
            "top_up_form": top_up_form,
            "support_form": support_form,
            "statement_form": statement_form,
            "terms_form": terms_form,
            "limits": limits,
            "org": org,
            "counts": counts,
            "choices": [
                (value, label, counts.effective(value)) for value, label in BillingType.choices
            ],
        },
        status=400 if invalid or (posted and not which) else 200,
    )


def _top_up_currency_removal_confirm(
    request: PortalRequest, removals: list[CurrencyRemoval]
) -> HttpResponse:
    """Removing a currency stops Add credit and auto-recharge in it: confirm first. The page
    posts the same form again, with `confirm`."""
    posted = [
        (name, value)
        for name in request.POST
        if name not in ("csrfmiddlewaretoken", "confirm")
        for value in request.POST.getlist(name)
    ]
    return render(
        request,
        "billing/settings/top_up_currency_remove_confirm.html",
        {"removals": removals, "posted": posted},
    )


def _default_billing_type_save(
    request: PortalRequest, org: OrganizationSettings, chosen_value: str
) -> HttpResponse:
    """It moves every developer without a billing type of their own: confirm first."""
    chosen = BillingType(chosen_value)
    if chosen == org.default_billing_type:
        messages.info(
            request, f"Nothing changed: the default billing type is already {chosen.label}."
        )
        return redirect("monetization_settings")
    if "confirm" not in request.POST:
        following = billing_type_counts().following_default
        return render(
            request,
            "billing/billing_type/default_billing_type_confirm.html",
            {"chosen": chosen, "following": following, "meaning": CHANGE_MEANING[chosen]},
        )
    affected = organization_default_billing_type_set(billing_type=chosen, changed_by=request.user)
    messages.success(
        request,
        f"The default billing type is now {chosen.label}. {affected} developer"
        f"{pluralize(affected)} without a billing type of their own now "
        f"{'follows' if affected == 1 else 'follow'} it.",
    )
    return redirect("monetization_settings")


def _limits_initial() -> list[dict]:
    return [
        {
            "currency": limit.currency,
            "minimum": limit.minimum_money.input_text,
            "maximum": limit.maximum_money.input_text,
            "default": limit.default_money.input_text,
        }
        for limit in TopUpLimit.objects.all()
    ]
