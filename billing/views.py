from __future__ import annotations

import uuid
from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from accounts.models import User
from accounts.views import account_context
from billing.auto_recharge import auto_recharge_configure, card_setup_start, recharge_panels
from billing.exceptions import BillingError
from billing.forms import (
    AddCreditForm,
    AdjustBalanceForm,
    AutoRechargeForm,
    BillingTypeConfirmForm,
    BillingTypeForm,
    HistoryFilterForm,
    OrganizationSettingsForm,
    TopUpLimitFormSet,
    TopUpSettingsForm,
)
from billing.ledger import Actor
from billing.models import (
    BillingAccount,
    BillingType,
    BillingTypeChange,
    OrganizationSettings,
    TopUp,
    TopUpLimit,
    Wallet,
)
from billing.money import Money, MoneyError
from billing.offline import (
    offline_checkout_event,
    offline_event_deliver_later,
    offline_payment_intent_id,
    offline_setup_event,
)
from billing.selectors import (
    CurrencyRemoval,
    adjustment_currencies,
    billing_type_counts,
    billing_type_effective,
    billing_type_history,
    ledger_history,
    organization_settings_get,
    recharge_preview,
    top_up_currency_removals,
    wallets_for,
)
from billing.services import (
    billing_account_get_or_create,
    billing_type_set,
    organization_default_billing_type_set,
    organization_top_up_settings_update,
    wallet_adjust,
    wallet_adjust_refusal,
)
from billing.stripe_gateway import OFFLINE_CARDS, stripe_enabled
from billing.top_ups import (
    TopUpNotCancelled,
    TopUpRefused,
    add_credit_rows,
    top_up_cancel,
    top_up_expire_stale_offline,
    top_up_fail,
    top_up_offer,
    top_up_open,
    top_up_pay_offline,
    top_up_start,
)
from billing.webhooks import webhook_receive
from portal.access import PortalRequest, admin_required

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
def billing_type_tab(request: PortalRequest, user_id: int) -> HttpResponse:
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
            "billing/billing_type_confirm.html",
            {**context, "chosen": chosen, "meaning": meaning, "confirm_form": confirm_form},
        )
    history = billing_type_history(account=account)[:50]
    return render(
        request,
        "billing/billing_type_tab.html",
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


@admin_required("billing.administer_monetization")
@require_http_methods(["GET", "POST"])
def monetization_settings(request: PortalRequest) -> HttpResponse:
    """Organisation settings: default billing type (its own form, as it moves developers) and
    the Add credit settings with per-currency limits."""
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
    invalid = form.errors or top_up_form.errors or any(limits.errors) or limits.non_form_errors()
    if invalid:
        messages.error(request, "Nothing was saved: correct what is marked below.")
    return render(
        request,
        "billing/monetization_settings.html",
        {
            "form": form,
            "top_up_form": top_up_form,
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
        "billing/top_up_currency_remove_confirm.html",
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
            "billing/default_billing_type_confirm.html",
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
            "minimum": Money(limit.minimum, limit.currency).input_text,
            "maximum": Money(limit.maximum, limit.currency).input_text,
            "default": Money(limit.default, limit.currency).input_text,
        }
        for limit in TopUpLimit.objects.all()
    ]


def _first_error(form: BillingTypeForm) -> str:
    for errors in form.errors.values():
        return str(errors[0])
    return "The form was not valid."


HISTORY_PER_PAGE = 20


def _balance_context(request: PortalRequest, account: BillingAccount, url: str) -> dict:
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
    return {
        "billing_account": account,
        "recharge_panels": panels,
        "offline": not stripe_enabled(),
        "prepaid": prepaid,
        "wallets": wallets_for(account=account),
        # Postpaid: only wallets that hold something, not an empty row per offered currency.
        "rows": [r for r in add_credit_rows(account=account) if prepaid or r["wallet"]],
        "page": page,
        "kind": kind,
        "filter_form": filter_form,
        "balance_url": url,
    }


def _render_balance(request: PortalRequest, context: dict, status: int = 200) -> HttpResponse:
    # htmx asks for the history table only when paging or filtering.
    if request.htmx and request.htmx.target == "history":
        return render(request, "billing/_history.html", context)
    return render(request, "billing/balance.html", context, status=status)


@login_required
@require_safe
@vary_on_headers("HX-Request")  # the same address serves a fragment to htmx
def my_balance(request: PortalRequest) -> HttpResponse:
    account = billing_account_get_or_create(user=request.user)
    context = {
        **_balance_context(request, account, reverse("my_balance")),
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
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")  # the same address serves a fragment to htmx
def people_balance(request: PortalRequest, user_id: int) -> HttpResponse:
    """A developer's balance for admins; adjusting needs a second permission and a confirmation."""
    developer = _developer(user_id)
    account = billing_account_get_or_create(user=developer)
    context = {
        **account_context(developer=developer),
        **_balance_context(request, account, reverse("people_balance", args=[developer.pk])),
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
        "billing/adjust_confirm.html",
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
    balance = Money(entry.balance_after, entry.wallet.currency)
    if result.replayed:
        messages.info(request, f"This adjustment was already saved; the balance is {balance}.")
    else:
        messages.success(
            request, f"Balance adjusted: the {entry.wallet.currency} balance is now {balance}."
        )
    return redirect("people_balance", user_id=developer.pk)


# ---- Add credit (Stripe Checkout, or the offline test-payment page) ----


def _own_top_up(request: PortalRequest, public_id: uuid.UUID) -> TopUp:
    """A developer's own top-up; anybody else's is 404, as if it did not exist."""
    return get_object_or_404(
        TopUp.objects.select_related("billing_account"),
        public_id=public_id,
        billing_account__user=request.user,
    )


@login_required
@require_http_methods(["GET", "POST"])
def add_credit(request: PortalRequest, currency: str) -> HttpResponse:
    account = billing_account_get_or_create(user=request.user)
    offer = top_up_offer(account=account, currency=currency.upper())
    if offer is None:
        raise Http404("Adding credit in this currency is not offered.")
    context = {"offer": offer, "tab": "balance", "developer": request.user}
    if billing_type_effective(account=account) != BillingType.PREPAID:
        # Say so before the developer types an amount, not after.
        return render(
            request,
            "billing/add_credit.html",
            {**context, "postpaid": True},
            status=400 if request.method == "POST" else 200,
        )
    form = AddCreditForm(
        request.POST if request.method == "POST" else None,
        currency=offer.currency,
        initial={"amount": offer.default.input_text},
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
        "billing/add_credit.html",
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
        return render(request, "billing/_top_up_status.html", context)
    return render(request, "billing/top_up_status.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def top_up_cancel_view(request: PortalRequest, public_id: uuid.UUID) -> HttpResponse:
    """Stripe's cancel_url (a GET) asks; only the POST cancels, after closing Stripe's page."""
    top_up = _own_top_up(request, public_id)
    if top_up.state != TopUp.State.PENDING or top_up.source != TopUp.Source.CHECKOUT:
        return redirect("top_up_status", public_id=top_up.public_id)
    if request.method == "GET":
        return render(
            request,
            "billing/top_up_cancel.html",
            {"top_up": top_up, "amount": Money(top_up.amount, top_up.currency), "tab": "balance"},
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
@require_http_methods(["GET", "POST"])
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
        "billing/test_payment.html",
        {"top_up": top_up, "amount": Money(top_up.amount, top_up.currency)},
    )


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    status, message = webhook_receive(
        payload=request.body, signature=request.headers.get("Stripe-Signature", "")
    )
    return JsonResponse({"message": message}, status=status)


# ---- Saved card and auto-recharge ----


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
@require_http_methods(["GET", "POST"])
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
    return render(request, "billing/test_card.html", {"cards": cards})


@login_required
@require_http_methods(["GET", "POST"])
def auto_recharge_settings(request: PortalRequest, currency: str) -> HttpResponse:
    if request.method == "GET":
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
            try:
                auto_recharge_configure(
                    account=account,
                    currency=currency,
                    enabled=data["enabled"],
                    threshold=data["threshold"],
                    mode=data["mode"],
                    amount=data["amount"],
                    monthly_cap=data["monthly_cap"],
                    changed_by=request.user,
                )
            except BillingError as exc:
                form.add_error(None, str(exc))
            else:
                state = "on" if data["enabled"] else "off"
                messages.success(request, f"Auto-recharge for {currency} is {state}.")
                return redirect("my_balance")
    # The form is far down the page: say at the top that nothing was saved.
    messages.error(
        request,
        f"Auto-recharge for {currency} was not saved: see the errors under Auto-recharge below.",
    )
    context = {
        **_balance_context(request, account, reverse("my_balance")),
        "developer": request.user,
        "tab": "balance",
    }
    for panel in context["recharge_panels"]:
        if panel["currency"] == currency:
            panel["form"] = form  # show what was typed, with the errors
    return render(request, "billing/balance.html", context, status=400)
