"""The admin's Billing type tab: choose, confirm, save."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.access import PortalRequest, admin_required, developer_or_404
from accounts.models import User
from accounts.views import account_context
from billing.billing_accounts.selectors import organization_settings_get
from billing.billing_type.selectors import billing_type_history
from billing.billing_type.services import billing_type_set
from billing.exceptions import BillingError
from billing.models import BillingAccount, BillingType, BillingTypeChange
from billing.web.forms import BillingTypeConfirmForm, BillingTypeForm

# What each change means for the developer (seed 004, "Change of billing type").
CHANGE_MEANING = {
    BillingType.PREPAID: (
        "The developer's billing type becomes Prepaid immediately. They can use the APIs to the "
        "extent of their prepaid top-up amount. Any existing usage in their postpaid account must "
        "be billed separately by you."
    ),
    BillingType.POSTPAID: (
        "The developer's billing type becomes Postpaid immediately. Any existing balance, in every "
        "currency, in their prepaid account is reported as a credit transaction, and you must take "
        "that credit into account when you calculate what they owe after the billing cycle."
    ),
}


@admin_required("billing.update_any_billing_type")
@require_http_methods(["GET", "HEAD", "POST"])
def billing_type_tab(request: PortalRequest, user_id: int) -> HttpResponse:
    """The Billing type tab: choose (POST), confirm (POST with `confirm`), saved."""
    developer = developer_or_404(user_id)
    context = {**account_context(developer=developer), "tab": "billing_type", "admin_view": True}
    if request.method == "POST" and "confirm" in request.POST:
        return _billing_type_save(request, developer, context["billing_account"])
    account = context["billing_account"]
    default = organization_settings_get().default_billing_type
    form = BillingTypeForm(
        request.POST if request.method == "POST" else None,
        initial={"billing_type": account.billing_type or default},
    )
    if request.method == "POST" and form.is_valid():
        chosen = BillingType(form.cleaned_data["billing_type"])
        if chosen == account.billing_type:
            messages.info(
                request,
                f"Nothing changed: {developer.display_name} already has {chosen.label} as their "
                "own billing type.",
            )
            return redirect("billing_type_tab", user_id=developer.pk)
        if not account.billing_type and chosen == default:
            meaning = (
                f"{developer.display_name} already follows the organisation default, "
                f"{chosen.label}: their billing does not change now and no money moves. Saving "
                f"makes {chosen.label} their own billing type, so a later change of the default "
                "no longer applies to them."
            )
        else:
            meaning = CHANGE_MEANING[chosen]
        confirm_form = BillingTypeConfirmForm(
            initial={"billing_type": chosen, "expected_current": account.billing_type}
        )
        return render(
            request,
            "billing/billing_type/billing_type_confirm.html",
            {**context, "chosen": chosen, "meaning": meaning, "confirm_form": confirm_form},
        )
    history = billing_type_history(account=account)[:50]
    return render(
        request,
        "billing/billing_type/billing_type_tab.html",
        {**context, "form": form, "history": history},
        status=400 if form.errors else 200,
    )


def _billing_type_save(
    request: PortalRequest, developer: User, account: BillingAccount
) -> HttpResponse:
    form = BillingTypeConfirmForm(request.POST)
    if not form.is_valid():
        messages.error(request, _first_error(form) + " Nothing was changed.")
        return redirect("billing_type_tab", user_id=developer.pk)
    try:
        billing_type_set(
            account=account,
            billing_type=form.cleaned_data["billing_type"],
            changed_by=request.user,
            source=BillingTypeChange.Source.ADMIN,
            expected_current=form.cleaned_data["expected_current"],
        )
    except BillingError as exc:
        messages.error(request, f"{exc} Nothing was changed.")
        return redirect("billing_type_tab", user_id=developer.pk)
    label = BillingType(form.cleaned_data["billing_type"]).label
    messages.success(request, f"The billing type of {developer.display_name} is now {label}.")
    return redirect("billing_type_tab", user_id=developer.pk)


def _first_error(form: BillingTypeForm) -> str:
    for errors in form.errors.values():
        return str(errors[0])
    return "The form was not valid."
