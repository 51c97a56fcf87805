"""Add credit: the form, Stripe Checkout (or the offline test-payment page), the status page."""

from __future__ import annotations

import re
import uuid
from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_safe
from django.views.decorators.vary import vary_on_headers

from accounts.access import PortalRequest
from billing.billing_accounts.selectors import billing_type_effective, organization_settings_get
from billing.billing_accounts.services import billing_account_get_or_create
from billing.models import BillingType, TopUp, Wallet
from billing.money import MoneyError
from billing.offline import (
    offline_checkout_event,
    offline_event_deliver_later,
    offline_payment_intent_id,
)
from billing.payments.stripe_gateway import stripe_enabled
from billing.top_ups.checkout import (
    TopUpNotCancelled,
    top_up_cancel,
    top_up_expire_stale_offline,
    top_up_open,
    top_up_pay_offline,
    top_up_start,
)
from billing.top_ups.confirmations import top_up_fail
from billing.top_ups.limits import TopUpRefused, top_up_offer
from billing.web.forms import AddCreditForm


def _own_top_up(request: PortalRequest, public_id: uuid.UUID) -> TopUp:
    """A developer's own top-up; anybody else's is 404, as if it did not exist."""
    return get_object_or_404(
        TopUp.objects.select_related("billing_account"),
        public_id=public_id,
        billing_account__user=request.user,
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def add_credit(request: PortalRequest, currency: str) -> HttpResponse:
    currency = currency.upper()
    if not _CURRENCY_CODE.fullmatch(currency):  # before the query: PostgreSQL refuses NUL bytes
        raise Http404("Adding credit in this currency is not offered.")
    account = billing_account_get_or_create(user=request.user)
    offer = top_up_offer(account=account, currency=currency)
    if offer is None:
        raise Http404("Adding credit in this currency is not offered.")
    context = {
        "offer": offer,
        "tab": "balance",
        "developer": request.user,
        "credit_lifetime_days": organization_settings_get().credit_lifetime_days,
    }
    if billing_type_effective(account=account) != BillingType.PREPAID:
        # Say so before the developer types an amount, not after.
        return render(
            request,
            "billing/top_ups/add_credit.html",
            {**context, "postpaid": True},
            status=400 if request.method == "POST" else 200,
        )
    form = AddCreditForm(
        request.POST if request.method == "POST" else None,
        currency=offer.currency,
        initial={"amount": _amount_asked(request) or offer.default.input_text},
    )
    if request.method == "POST" and form.is_valid():
        try:
            top_up = top_up_start(
                account=account,
                money=form.cleaned_data["amount"],
                base_url=request.build_absolute_uri("/").rstrip("/"),
            )
        except TopUpRefused as exc:
            form.add_error("amount", str(exc))
        else:
            return redirect(top_up.checkout_url)
    return render(
        request,
        "billing/top_ups/add_credit.html",
        {
            **context,
            "form": form,
            "offline": not stripe_enabled(),
            "open_top_up": top_up_open(account=account, currency=offer.currency),
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_safe
@vary_on_headers("HX-Request")  # the same address serves a fragment to htmx
def top_up_status(request: PortalRequest, public_id: uuid.UUID) -> HttpResponse:
    """Where Stripe sends the developer back: pending until the webhook confirms (htmx polls)."""
    top_up = _own_top_up(request, public_id)
    wallet = Wallet.objects.filter(
        billing_account=top_up.billing_account, currency=top_up.currency
    ).first()
    context = {"top_up": top_up, "wallet": wallet, "tab": "balance", "developer": request.user}
    if request.htmx:
        if request.GET.get("seen") == top_up.state:
            # Nothing new: htmx leaves the page as it is, so a screen reader does not read the
            # same "Pending" out again every 2 s.
            return HttpResponse(status=HTTPStatus.NO_CONTENT)
        return render(request, "billing/top_ups/_top_up_status.html", context)
    return render(request, "billing/top_ups/top_up_status.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def top_up_cancel_view(request: PortalRequest, public_id: uuid.UUID) -> HttpResponse:
    """Stripe's cancel_url (a GET) asks; only the POST cancels, after closing Stripe's page."""
    top_up = _own_top_up(request, public_id)
    if top_up.state != TopUp.State.PENDING or top_up.source != TopUp.Source.CHECKOUT:
        return redirect("top_up_status", public_id=top_up.public_id)
    if request.method in ("GET", "HEAD"):
        return render(
            request,
            "billing/top_ups/top_up_cancel.html",
            {"top_up": top_up, "amount": top_up.money, "tab": "balance"},
        )
    try:
        cancelled = top_up_cancel(top_up=top_up)
    except TopUpNotCancelled as exc:
        messages.error(request, str(exc))
        return redirect("top_up_status", public_id=top_up.public_id)
    if not cancelled:  # it finished meanwhile: its page says how
        return redirect("top_up_status", public_id=top_up.public_id)
    messages.info(request, "Adding credit was cancelled. Nothing was charged.")
    return redirect("my_balance")


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def test_payment(request: PortalRequest, public_id: uuid.UUID) -> HttpResponse:
    """Offline mode only: a clearly labelled stand-in for Stripe Checkout. Paying builds a
    Stripe-shaped event, signs it with the local webhook secret and hands it to the same
    webhook handler that Stripe would call."""
    if stripe_enabled():
        raise Http404("Payments go through Stripe.")
    top_up = _own_top_up(request, public_id)
    top_up_expire_stale_offline(top_up=top_up)  # like Stripe's page, it cannot be paid for ever
    if request.method == "POST" and top_up.state == TopUp.State.PENDING:
        outcome = request.POST.get("outcome")
        if outcome not in ("pay", "decline"):
            messages.error(request, "Choose Pay or Decline.")
        else:
            try:
                payload, signature = offline_checkout_event(top_up=top_up, paid=outcome == "pay")
            except MoneyError as exc:  # made before Add credit refused what Stripe cannot charge
                top_up_fail(top_up=top_up, reason=str(exc))
            else:
                # Paid: from now on the top-up cannot be cancelled (and a cancel that came
                # first stops the payment).
                paid = outcome != "pay" or top_up_pay_offline(
                    top_up=top_up, payment_intent_id=offline_payment_intent_id(top_up)
                )
                if paid:
                    offline_event_deliver_later(payload=payload, signature=signature)
            return redirect("top_up_status", public_id=top_up.public_id)
    return render(
        request,
        "billing/top_ups/test_payment.html",
        {"top_up": top_up, "amount": top_up.money},
    )


def _amount_asked(request: PortalRequest) -> str:
    """ "Try again" links carry the amount of the payment that failed (?amount=20.00): shown
    in the field as it was, only when it is plainly a number; the form checks it on Pay."""
    amount = request.GET.get("amount", "")
    return amount if _PLAIN_AMOUNT.fullmatch(amount) else ""


_PLAIN_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
