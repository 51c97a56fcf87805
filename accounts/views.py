from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.access import PortalRequest
from accounts.forms import BillingDetailsForm
from accounts.models import User
from billing.billing_accounts.selectors import organization_settings_get
from billing.billing_accounts.services import (
    BILLING_DETAILS,
    billing_account_get_or_create,
    billing_details_update,
)
from billing.billing_type.selectors import billing_type_label
from billing.subscriptions.selectors import plans_open


def account_context(*, developer: User) -> dict:
    """What My Account shows, for the developer and for an admin looking at them."""
    account = billing_account_get_or_create(user=developer)
    default = organization_settings_get().default_billing_type
    return {
        "developer": developer,
        "billing_account": account,
        "billing_type_label": billing_type_label(account=account, default=default),
    }


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def my_account(request: PortalRequest) -> HttpResponse:
    context = account_context(developer=request.user)
    account = context["billing_account"]
    if request.method == "POST":
        form = BillingDetailsForm(request.POST)
        if form.is_valid():
            billing_details_update(account=account, **form.cleaned_data)
            messages.success(request, "Your billing details were saved.")
            return redirect("my_account")
    else:
        form = BillingDetailsForm(
            initial={name: getattr(account, name) for name in BILLING_DETAILS}
        )
    context.update(form=form, tab="account", open_plans=plans_open(account=account))
    return render(request, "accounts/my_account.html", context)
