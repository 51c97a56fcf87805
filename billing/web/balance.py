"""The balance page: wallets, history, and for admins the adjustment."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from accounts.access import PortalRequest, admin_required, developer_or_404
from accounts.models import User
from accounts.views import account_context
from billing.auto_recharge.selectors import recharge_preview
from billing.billing_accounts.selectors import billing_type_effective, organization_settings_get
from billing.billing_accounts.services import billing_account_get_or_create
from billing.exceptions import BillingError
from billing.expiry.selectors import credits_expiring
from billing.ledger.entries import Actor
from billing.ledger.selectors import ledger_history, wallets_for
from billing.ledger.services import wallet_adjust, wallet_adjust_refusal
from billing.models import BillingAccount, BillingType
from billing.money import Money
from billing.notifications.alerts import balance_alert_dismiss as balance_alert_dismiss_service
from billing.payments.stripe_gateway import stripe_enabled
from billing.top_ups.selectors import add_credit_rows, adjustment_currencies, recent_top_ups
from billing.web.auto_recharge_panel import recharge_panels
from billing.web.forms import AdjustBalanceForm, HistoryFilterForm
from billing.web.payment_status import payment_warnings
from billing.web.spending import alert_percents_text, spending_panels

HISTORY_PER_PAGE = 20


def balance_context(request: PortalRequest, account: BillingAccount, url: str) -> dict:
    """Wallets and one page of history; the same few queries however long the history is.
    `url` is the balance page's own address, which the history's filter and pager ask (the
    page may be shown at the address of a form that failed)."""
    org = organization_settings_get()
    prepaid = billing_type_effective(account=account, default=org.default_billing_type) == (
        BillingType.PREPAID
    )
    filter_form = HistoryFilterForm(request.GET)
    kind = filter_form.cleaned_data["kind"] if filter_form.is_valid() else ""
    page = Paginator(ledger_history(account=account, kind=kind), HISTORY_PER_PAGE).get_page(
        request.GET.get("page")
    )
    panels = recharge_panels(account=account)
    warnings = payment_warnings(account=account, panels=panels)
    rows = [r for r in add_credit_rows(account=account) if prepaid or r["wallet"]]
    for row in rows:
        row["warnings"] = warnings.get(row["currency"], [])
    return {
        "billing_account": account,
        "recharge_panels": panels,
        "offline": not stripe_enabled(),
        "prepaid": prepaid,
        "wallets": wallets_for(account=account),
        # Postpaid: only wallets that hold something, not an empty row per offered currency.
        "rows": rows,
        "payments": recent_top_ups(account=account),
        "page": page,
        "kind": kind,
        "filter_form": filter_form,
        "balance_url": url,
        "spending": spending_panels(account=account) if prepaid else [],
        "alert_percents": alert_percents_text(),
        "expiring": credits_expiring(account=account),
        "credit_lifetime_days": org.credit_lifetime_days,
    }


def _render_balance(request: PortalRequest, context: dict, status: int = 200) -> HttpResponse:
    # htmx asks for the history table only when paging or filtering.
    if request.htmx and request.htmx.target == "history":
        return render(request, "billing/ledger/_history.html", context)
    return render(request, "billing/balance.html", context, status=status)


@login_required
@require_safe
@vary_on_headers("HX-Request")  # the same address serves a fragment to htmx
def my_balance(request: PortalRequest) -> HttpResponse:
    account = billing_account_get_or_create(user=request.user)
    context = {
        **balance_context(request, account, reverse("my_balance")),
        "developer": request.user,
        "tab": "balance",
    }
    if request.GET.get("card") == "saving" and not account.card_last4:
        # Back from saving a card: the webhook brings it; the card box asks again every 2 s,
        # for a minute at most.
        try:
            context["card_polls_left"] = max(0, min(int(request.GET.get("left", 30)), 30))
        except ValueError:
            context["card_polls_left"] = 0
    return _render_balance(request, context)


@admin_required("billing.view_any_prepaid_balance")
@require_http_methods(["GET", "HEAD", "POST"])
@vary_on_headers("HX-Request")  # the same address serves a fragment to htmx
def people_balance(request: PortalRequest, user_id: int) -> HttpResponse:
    """A developer's balance for admins; adjusting needs a second permission and a confirmation."""
    developer = developer_or_404(user_id)
    account = billing_account_get_or_create(user=developer)
    context = {
        **account_context(developer=developer),
        **balance_context(request, account, reverse("people_balance", args=[developer.pk])),
        "tab": "balance",
        "admin_view": True,
    }
    can_adjust = request.user.has_perm("billing.adjust_any_prepaid_balance")
    if request.method == "POST" and not can_adjust:
        raise PermissionDenied("You need the “Adjust any prepaid balance” permission.")
    form = AdjustBalanceForm(
        request.POST if request.method == "POST" else None,
        currencies=adjustment_currencies(account=account),
    )
    if request.method == "POST" and form.is_valid():
        if "confirm" in request.POST:
            return _adjust_save(request, developer, account, form)
        return _adjust_confirm(request, context, form)
    context["adjust_form"] = form if can_adjust else None
    if form.errors:
        _say_adjustment_not_saved(request)
    return _render_balance(request, context, status=400 if form.errors else 200)


def _say_adjustment_not_saved(request: PortalRequest) -> None:
    # The form is below the wallets (far down on a phone): say at the top that nothing changed.
    messages.error(request, "The adjustment was not saved: see Adjust balance below.")


def _adjust_confirm(request: PortalRequest, context: dict, form: AdjustBalanceForm) -> HttpResponse:
    change = form.cleaned_data["change"]
    refusal = wallet_adjust_refusal(account=context["billing_account"], change=change)
    if refusal:  # say it now, not after the admin has confirmed
        form.add_error("amount", refusal)
        _say_adjustment_not_saved(request)
        return _render_balance(request, {**context, "adjust_form": form}, status=400)
    current = next((w.balance for w in context["wallets"] if w.currency == change.currency), 0)
    confirm_form = AdjustBalanceForm(
        initial={**form.cleaned_data, "transaction_id": f"adjustment:{uuid.uuid4()}"}
    )
    return render(
        request,
        "billing/ledger/adjust_confirm.html",
        {
            **context,
            "change": change,
            "amount": Money(abs(change.nanos), change.currency),
            "current": Money(current, change.currency),
            "after": Money(current + change.nanos, change.currency),
            "reason": form.cleaned_data["reason"],
            "recharge": recharge_preview(account=context["billing_account"], change=change),
            "confirm_form": confirm_form,
        },
    )


def _adjust_save(
    request: PortalRequest, developer: User, account: BillingAccount, form: AdjustBalanceForm
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
    balance = entry.balance_after_money
    if result.replayed:
        messages.info(request, f"This adjustment was already saved; the balance is {balance}.")
    else:
        messages.success(
            request, f"Balance adjusted: the {entry.wallet.currency} balance is now {balance}."
        )
    return redirect("people_balance", user_id=developer.pk)


@login_required
@require_POST
def balance_alert_dismiss(request: PortalRequest, alert_id: int) -> HttpResponse:
    """Hide a low-balance alert (the next top-up would have too); only the developer's own."""
    if not balance_alert_dismiss_service(user_id=request.user.pk, alert_id=alert_id):
        raise Http404
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=False):
        target = reverse("my_balance")
    return redirect(target)
