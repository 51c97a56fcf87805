from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import User
from accounts.views import account_context
from billing.exceptions import BillingError
from billing.forms import (
    AdjustBalanceForm,
    BillingTypeConfirmForm,
    BillingTypeForm,
    HistoryFilterForm,
    OrganizationSettingsForm,
)
from billing.ledger import Actor
from billing.models import BillingAccount, BillingType, BillingTypeChange
from billing.money import Money
from billing.selectors import (
    billing_type_counts,
    billing_type_history,
    ledger_history,
    organization_settings_get,
    wallets_for,
)
from billing.services import (
    billing_account_get_or_create,
    billing_type_set,
    organization_default_billing_type_set,
    wallet_adjust,
)
from portal.access import admin_required

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


def _developer(user_id: int) -> User:
    return get_object_or_404(User, pk=user_id, is_staff=False)


@admin_required("billing.update_any_billing_type")
@require_http_methods(["GET", "POST"])
def billing_type_tab(request: HttpRequest, user_id: int) -> HttpResponse:
    """The Billing type tab: choose (POST), confirm (POST with `confirm`), saved."""
    developer = _developer(user_id)
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
        confirm_form = BillingTypeConfirmForm(
            initial={"billing_type": chosen, "expected_current": account.billing_type}
        )
        return render(
            request,
            "billing/billing_type_confirm.html",
            {
                **context,
                "chosen": chosen,
                "meaning": CHANGE_MEANING[chosen],
                "unchanged": chosen == account.billing_type,
                "confirm_form": confirm_form,
            },
        )
    history = billing_type_history(account=account)[:50]
    return render(
        request,
        "billing/billing_type_tab.html",
        {**context, "form": form, "history": history},
        status=400 if form.errors else 200,
    )


def _billing_type_save(
    request: HttpRequest, developer: User, account: BillingAccount
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


@admin_required("billing.administer_monetization")
@require_http_methods(["GET", "POST"])
def monetization_settings(request: HttpRequest) -> HttpResponse:
    org = organization_settings_get()
    form = OrganizationSettingsForm(
        request.POST if request.method == "POST" else None,
        initial={"default_billing_type": org.default_billing_type},
    )
    if request.method == "POST" and form.is_valid():
        affected = organization_default_billing_type_set(
            billing_type=form.cleaned_data["default_billing_type"], changed_by=request.user
        )
        messages.success(
            request,
            f"The configuration options have been saved. {affected} developer(s) without a "
            "billing type of their own now follow the new default.",
        )
        return redirect("monetization_settings")
    counts = billing_type_counts()
    return render(
        request,
        "billing/monetization_settings.html",
        {
            "form": form,
            "org": org,
            "counts": counts,
            "choices": [
                (value, label, counts.effective(value)) for value, label in BillingType.choices
            ],
        },
        status=400 if form.errors else 200,
    )


def _first_error(form: BillingTypeForm) -> str:
    for errors in form.errors.values():
        return str(errors[0])
    return "The form was not valid."


HISTORY_PER_PAGE = 20


def _balance_context(request: HttpRequest, account: BillingAccount) -> dict:
    """Wallets and one page of history; the same few queries however long the history is."""
    org = organization_settings_get()
    effective = account.billing_type or org.default_billing_type
    filter_form = HistoryFilterForm(request.GET)
    kind = filter_form.cleaned_data["kind"] if filter_form.is_valid() else ""
    page = Paginator(ledger_history(account=account, kind=kind), HISTORY_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return {
        "billing_account": account,
        "prepaid": effective == BillingType.PREPAID,
        "wallets": wallets_for(account=account),
        "page": page,
        "kind": kind,
        "filter_form": filter_form,
    }


def _render_balance(request: HttpRequest, context: dict, status: int = 200) -> HttpResponse:
    # htmx asks for the history table only when paging or filtering.
    if request.htmx and request.htmx.target == "history":
        return render(request, "billing/_history.html", context)
    return render(request, "billing/balance.html", context, status=status)


@login_required
@require_GET
def my_balance(request: HttpRequest) -> HttpResponse:
    account = billing_account_get_or_create(user=request.user)
    context = {**_balance_context(request, account), "developer": request.user, "tab": "balance"}
    return _render_balance(request, context)


@admin_required("billing.view_any_prepaid_balance")
@require_http_methods(["GET", "POST"])
def people_balance(request: HttpRequest, user_id: int) -> HttpResponse:
    """A developer's balance for admins; adjusting needs a second permission and a confirmation."""
    developer = _developer(user_id)
    account = billing_account_get_or_create(user=developer)
    context = {
        **account_context(developer=developer),
        **_balance_context(request, account),
        "tab": "balance",
        "admin_view": True,
    }
    can_adjust = request.user.has_perm("billing.adjust_any_prepaid_balance")
    if request.method == "POST" and not can_adjust:
        raise PermissionDenied("You need the “Adjust any prepaid balance” permission.")
    form = AdjustBalanceForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        if "confirm" in request.POST:
            return _adjust_save(request, developer, account, form)
        return _adjust_confirm(request, context, form)
    context["adjust_form"] = form if can_adjust else None
    return _render_balance(request, context, status=400 if form.errors else 200)


def _adjust_confirm(request: HttpRequest, context: dict, form: AdjustBalanceForm) -> HttpResponse:
    change = form.cleaned_data["change"]
    current = next((w.balance for w in context["wallets"] if w.currency == change.currency), 0)
    confirm_form = AdjustBalanceForm(
        initial={**form.cleaned_data, "transaction_id": f"adjustment:{uuid.uuid4()}"}
    )
    return render(
        request,
        "billing/adjust_confirm.html",
        {
            **context,
            "change": change,
            "amount": Money(abs(change.nanos), change.currency),
            "current": Money(current, change.currency),
            "after": Money(current + change.nanos, change.currency),
            "reason": form.cleaned_data["reason"],
            "confirm_form": confirm_form,
        },
    )


def _adjust_save(
    request: HttpRequest, developer: User, account: BillingAccount, form: AdjustBalanceForm
) -> HttpResponse:
    try:
        result = wallet_adjust(
            account=account,
            change=form.cleaned_data["change"],
            actor=Actor.for_user(request.user),
            reason=form.cleaned_data["reason"],
            transaction_id=form.cleaned_data["transaction_id"] or None,
        )
    except BillingError as exc:
        messages.error(request, f"{exc} Nothing was changed.")
        return redirect("people_balance", user_id=developer.pk)
    entry = result.entry
    balance = Money(entry.balance_after, entry.wallet.currency)
    if result.replayed:
        messages.info(request, f"This adjustment was already saved; the balance is {balance}.")
    else:
        messages.success(
            request, f"Balance adjusted: the {entry.wallet.currency} balance is now {balance}."
        )
    return redirect("people_balance", user_id=developer.pk)
