"""The saved card and the auto-recharge panels of the balance page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.access import PortalRequest
from billing.auto_recharge.selectors import (
    RechargePreview,
    recharge_attempt_since,
    recharge_on_save,
)
from billing.auto_recharge.settings import auto_recharge_check, auto_recharge_configure
from billing.billing_accounts.services import billing_account_get_or_create
from billing.exceptions import BillingError
from billing.models import AutoRecharge, BillingAccount, RechargeAttempt, Wallet
from billing.money import Money
from billing.offline import offline_event_deliver_later, offline_setup_event
from billing.payments.cards import card_setup_start
from billing.payments.offline_cards import OFFLINE_CARDS
from billing.payments.stripe_gateway import stripe_enabled
from billing.web.auto_recharge_panel import recharge_summary
from billing.web.balance import balance_context
from billing.web.forms import AutoRechargeForm


@login_required
@require_POST
def card_setup(request: PortalRequest) -> HttpResponse:
    """Save a card on Stripe's page (Checkout in setup mode), or the offline test card page."""
    account = billing_account_get_or_create(user=request.user)
    if not stripe_enabled():
        return redirect("test_card")
    base = request.build_absolute_uri("/").rstrip("/")
    try:
        url = card_setup_start(account=account, base_url=base)
    except BillingError as exc:
        messages.error(request, str(exc))
        return redirect("my_balance")
    return redirect(url)


@login_required
@require_safe
def card_saved(request: PortalRequest) -> HttpResponse:
    messages.success(request, "Thank you: your card is being saved. It shows here in a moment.")
    return redirect(reverse("my_balance") + "?card=saving")


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def test_card(request: PortalRequest) -> HttpResponse:
    """Offline mode only: choose a test card; saving it goes through the signed webhook."""
    if stripe_enabled():
        raise Http404("Cards are saved on Stripe's page.")
    if request.method == "POST":
        card = request.POST.get("card", "")
        if card not in OFFLINE_CARDS:
            messages.error(request, "Choose one of the test cards.")
        else:
            account = billing_account_get_or_create(user=request.user)
            payload, signature = offline_setup_event(account=account, payment_method_id=card)
            offline_event_deliver_later(payload=payload, signature=signature)
            return redirect("card_saved")
    cards = [
        (pm, brand.title(), last4, behaviour)
        for pm, (brand, last4, behaviour) in OFFLINE_CARDS.items()
    ]
    return render(request, "billing/payments/test_card.html", {"cards": cards})


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def auto_recharge_settings(request: PortalRequest, currency: str) -> HttpResponse:
    if request.method in ("GET", "HEAD"):
        # A refused save leaves the browser on this address; reloading it must not be a blank 405.
        return redirect(reverse("my_balance") + "#auto-recharge")
    account = billing_account_get_or_create(user=request.user)
    currency = currency.upper()
    form = AutoRechargeForm(request.POST, currency=currency)
    if form.is_valid():
        data = form.cleaned_data
        if data["threshold"] is None or data["amount"] is None:
            form.add_error(None, "Enter the threshold and the amount.")
        else:
            settings = {
                "enabled": data["enabled"],
                "threshold": data["threshold"],
                "mode": data["mode"],
                "amount": data["amount"],
                "monthly_cap": data["monthly_cap"],
            }
            try:
                # Checked first: a confirmation is never asked for settings that are refused.
                auto_recharge_check(account=account, currency=currency, **settings)
                charge = None
                if data["enabled"]:
                    charge = recharge_on_save(
                        account=account, currency=currency, **_without(settings, "enabled")
                    )
                confirmed = request.POST.get("confirm_charge")
                if charge is not None and confirmed != str(charge.amount.nanos):
                    return _confirm_charge(request, account, currency, charge, settings, confirmed)
                since = timezone.now()
                auto_recharge_configure(
                    account=account, currency=currency, changed_by=request.user, **settings
                )
            except BillingError as exc:
                form.add_error(None, str(exc))
            else:
                _say_saved(request, account, currency, data["enabled"], charge, since)
                return redirect("my_balance")
    # The form is far down the page: say at the top that nothing was saved.
    messages.error(
        request,
        f"Auto-recharge for {currency} was not saved: see the errors under Auto-recharge below.",
    )
    context = {
        **balance_context(request, account, reverse("my_balance")),
        "developer": request.user,
        "tab": "balance",
    }
    for panel in context["recharge_panels"]:
        if panel["currency"] == currency:
            panel["form"] = form  # show what was typed, with the errors
    return render(request, "billing/balance.html", context, status=400)


def _without(settings: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in settings.items() if key != name}


def _confirm_charge(
    request: PortalRequest,
    account: BillingAccount,
    currency: str,
    charge: RechargePreview,
    settings: dict[str, Any],
    confirmed: str | None,
) -> HttpResponse:
    """Saving would charge the card at once: say what, to which card, and ask. The page posts
    the same form again with the amount confirmed; if that amount is no longer what saving
    would charge (the balance moved), it asks again."""
    posted = [
        (name, value)
        for name in request.POST
        if name not in ("csrfmiddlewaretoken", "confirm_charge")
        for value in request.POST.getlist(name)
    ]
    wallet = Wallet.objects.filter(billing_account=account, currency=currency).first()
    candidate = AutoRecharge(
        currency=currency,
        mode=settings["mode"],
        threshold=settings["threshold"].nanos,
        amount=settings["amount"].nanos,
    )
    return render(
        request,
        "billing/auto_recharge/confirm_charge.html",
        {
            "currency": currency,
            "charge": charge,
            "changed": confirmed is not None,
            "balance": wallet.balance_money if wallet else Money(0, currency),
            "summary": recharge_summary(candidate),
            "monthly_cap": settings["monthly_cap"],
            "posted": posted,
        },
    )


def _say_saved(
    request: PortalRequest,
    account: BillingAccount,
    currency: str,
    enabled: bool,
    charge: RechargePreview | None,
    since: datetime,
) -> None:
    """What the save did, and what it charged: in-process the charge is already made; with a
    worker it is under way and the panel shows it."""
    if not enabled:
        messages.success(request, f"Auto-recharge for {currency} is off.")
        return
    if charge is None:
        messages.success(request, f"Auto-recharge for {currency} is on.")
        return
    attempt = recharge_attempt_since(account=account, currency=currency, since=since)
    state = attempt.state if attempt else RechargeAttempt.State.IN_FLIGHT
    if state == RechargeAttempt.State.SUCCEEDED and attempt is not None:
        messages.success(
            request,
            f"Auto-recharge for {currency} is on. {charge.card} was charged "
            f"{attempt.amount_money}; it is added to your balance.",
        )
    elif state == RechargeAttempt.State.FAILED and attempt is not None:
        messages.error(
            request,
            f"Auto-recharge for {currency} is on, but charging {charge.card} "
            f"{attempt.amount_money} failed: {attempt.failure_reason}",
        )
    else:
        messages.success(
            request,
            f"Auto-recharge for {currency} is on. {charge.card} is being charged "
            f"{charge.amount} now; the credit shows here in a moment.",
        )
