"""Buying a plan (quote, terms, confirm) and the purchased plans: the developer's own, and a
developer's for admins, with cancelling behind a confirmation."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from accounts.access import PortalRequest, admin_required, developer_or_404
from accounts.views import account_context
from billing.billing_accounts.selectors import billing_type_effective, organization_settings_get
from billing.billing_accounts.services import billing_account_get_or_create
from billing.catalog.selectors import api_product_get, rate_plan_in_force
from billing.exceptions import AlreadyExists, BillingError
from billing.ledger.entries import Actor
from billing.models import ApiProduct, BillingAccount, BillingType
from billing.money import Money
from billing.subscriptions.fees import Quote, purchase_quote
from billing.subscriptions.selectors import (
    products_bought,
    purchase_shortfall,
    purchased_plans,
    subscription_get,
    wallet_balance_nanos,
)
from billing.subscriptions.services import (
    Purchase,
    PurchaseRefused,
    subscription_expire,
    subscription_purchase,
)
from billing.top_ups.limits import top_up_offer
from billing.web.catalog import plan_card

# ---- Buying a plan ----


class PurchaseForm(forms.Form):
    """What the developer may choose when buying: a start date, and (when the organisation has
    purchase terms) that they accept them. The page renders the hidden fields itself."""

    start_date = forms.DateField(
        required=False,
        label="Start date",
        help_text="Leave empty to start now. A later date starts at 00:00 UTC that day.",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": "Enter a date, e.g. 2030-01-31."},
    )
    accept_terms = forms.BooleanField(required=False, label="I accept the purchase terms above")
    # The start the shown price is for ("" for now): a changed date is priced before it is bought.
    quoted_start = forms.CharField(required=False, max_length=10, widget=forms.HiddenInput)
    idempotency_key = forms.CharField(max_length=255, widget=forms.HiddenInput)

    def __init__(self, *args: Any, terms: str, today: date, buying: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.today, self.buying = today, buying
        self.fields["start_date"].widget.attrs["min"] = today.isoformat()
        if not terms:
            del self.fields["accept_terms"]

    def clean_start_date(self) -> date | None:
        start: date | None = self.cleaned_data["start_date"]
        if start is not None and start < self.today:
            raise forms.ValidationError(
                "This date is in the past: leave it empty to start now, or pick a later date."
            )
        return start if start is not None and start > self.today else None  # today is now

    def clean_accept_terms(self) -> bool:
        accepted: bool = self.cleaned_data["accept_terms"]
        if self.buying and not accepted:
            raise forms.ValidationError("Accept the purchase terms to buy this plan.")
        return accepted


def _start_time(day: date | None) -> datetime | None:
    """A later start begins at 00:00 UTC that day; None is now."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None


def _quoted_day(text: str, today: date) -> date | None:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if day > today else None


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def plan_purchase(request: PortalRequest, product_name: str) -> HttpResponse:
    if request.user.is_staff:
        raise PermissionDenied(
            "Plans are bought by developers: an administrator's account has no balance to pay from."
        )
    product = api_product_get(name=product_name)
    if product is None or rate_plan_in_force(product=product) is None:
        raise Http404("This API product is not on sale.")
    account = billing_account_get_or_create(user=request.user)
    today = timezone.now().date()  # UTC
    buying = request.method == "POST" and request.POST.get("action") == "buy"
    form = PurchaseForm(
        request.POST if request.method == "POST" else None,
        terms=organization_settings_get().purchase_terms,
        today=today,
        buying=buying,
    )
    page = _PurchasePage(request, account, product, form)
    if request.method != "POST":
        return page.render(key=str(uuid.uuid4()))
    key = request.POST.get("idempotency_key", "")[:255] or str(uuid.uuid4())
    if not form.is_valid():
        day = _quoted_day(request.POST.get("quoted_start", ""), today)
        return page.render(key=key, day=day, status=HTTPStatus.BAD_REQUEST)
    day = form.cleaned_data["start_date"]
    if not buying:
        return page.render(key=key, day=day)
    if form.cleaned_data["quoted_start"] != (day.isoformat() if day else ""):
        # Never buy at a price the developer has not seen.
        return page.render(key=key, day=day, repriced=True)
    try:
        purchase = subscription_purchase(
            account=account,
            product=product,
            actor=Actor.for_user(request.user),
            start_time=_start_time(day),
            idempotency_key=key,
        )
    except PurchaseRefused as refused:
        return page.render(key=key, day=day, refused=refused, status=HTTPStatus.BAD_REQUEST)
    except AlreadyExists as exc:
        return page.render(key=key, day=day, already=str(exc), status=HTTPStatus.CONFLICT)
    except BillingError as exc:  # no plan on sale at that start, a start gone past meanwhile
        form.add_error("start_date", str(exc))
        return page.render(key=key, status=HTTPStatus.BAD_REQUEST)
    _say_bought(request, account, purchase)
    return redirect("my_plans")


class _PurchasePage:
    """The purchase page at a start: the plan in force then, its quote, the balance before
    and after, and what stops the purchase (already bought, not enough money)."""

    def __init__(
        self, request: PortalRequest, account: BillingAccount, product: ApiProduct, form: Any
    ) -> None:
        self.request, self.account, self.product, self.form = request, account, product, form

    def render(
        self,
        *,
        key: str,
        day: date | None = None,
        refused: PurchaseRefused | None = None,
        already: str = "",
        repriced: bool = False,
        status: int = HTTPStatus.OK,
    ) -> HttpResponse:
        start = _start_time(day)
        plan = rate_plan_in_force(product=self.product, at=start)
        if plan is None:  # nothing on sale that day: price a start now, and say why
            self.form.add_error(
                "start_date", f"{self.product.display_name} has no plan on sale on that date."
            )
            day, start, status = None, None, HTTPStatus.BAD_REQUEST
            plan = rate_plan_in_force(product=self.product)
            if plan is None:
                raise Http404("This API product is not on sale.")
        quote = purchase_quote(plan, start or timezone.now())
        balance = wallet_balance_nanos(self.account, plan.currency)
        if (
            not already
            and refused is None
            and self.product.pk in products_bought(account=self.account)
        ):
            already = f"You have already purchased {self.product.display_name}."
        shortfall = refused.shortfall if refused else None
        if shortfall is None and not already:
            shortfall = purchase_shortfall(account=self.account, total=quote.total)
        org = organization_settings_get()
        context = {
            "card": plan_card(self.product, plan),
            "product": self.product,
            "plan": plan,
            "quote": quote,
            "later": start is not None,
            "balance": Money(balance, plan.currency),
            "balance_after": Money(balance - quote.total.nanos, plan.currency),
            "prepaid": billing_type_effective(
                account=self.account, default=org.default_billing_type
            )
            == BillingType.PREPAID,
            "terms": org.purchase_terms,
            "form": self.form,
            "idempotency_key": key,
            "quoted_start": day.isoformat() if day else "",
            "already": already,
            "repriced": repriced,
            "refused": refused,
            "shortfall": shortfall,
            "refusal": str(refused or PurchaseRefused(shortfall)) if shortfall else "",
            **self._add_credit(shortfall),
        }
        return render(self.request, "billing/subscriptions/purchase.html", context, status=status)

    def _add_credit(self, shortfall: Money | None) -> dict[str, Any]:
        """Where to add the shortfall: the Add credit page for the plan's currency, filled in
        with the shortfall (or the smallest top-up, when the shortfall is less)."""
        if shortfall is None:
            return {}
        offer = top_up_offer(account=self.account, currency=shortfall.currency)
        if offer is None:
            return {"add_credit_url": ""}
        amount = shortfall if shortfall.nanos >= offer.minimum.nanos else offer.minimum
        url = reverse("add_credit", args=[shortfall.currency]) + f"?amount={amount.input_text}"
        return {"add_credit_url": url, "add_credit_amount": amount, "top_up_minimum": offer.minimum}


def _say_bought(request: PortalRequest, account: BillingAccount, purchase: Purchase) -> None:
    subscription, quote = purchase.subscription, purchase.quote
    what = f"{subscription.product.display_name} ({subscription.rate_plan.display_name} plan)"
    if purchase.replayed:
        messages.info(
            request, f"You had already bought {what} with this form: nothing more was charged."
        )
        return
    fees = _fees_text(quote)
    prepaid = billing_type_effective(account=account) == BillingType.PREPAID
    if subscription.start_time > timezone.now():
        when = f"{subscription.start_time:%-d %B %Y}"
        charge = (
            f" {quote.total} ({fees}) will be charged on {when}, when it starts."
            if fees
            else " It has no setup fee and no first fee."
        )
        messages.success(request, f"You bought {what}, starting on {when}.{charge}")
    elif not fees:
        messages.success(
            request,
            f"You bought {what}. Nothing was charged: it has no setup fee and no first fee.",
        )
    elif prepaid:
        messages.success(
            request, f"You bought {what}. Charged {quote.total} to your balance: {fees}."
        )
    else:
        messages.success(
            request, f"You bought {what}. {quote.total} is billed on your next invoice: {fees}."
        )


def _fees_text(quote: Quote) -> str:
    parts = []
    if quote.setup_fee.nanos:
        parts.append(f"setup fee {quote.setup_fee}")
    if quote.first_fee.nanos:
        parts.append(
            f"first recurring fee {quote.first_fee} ({quote.days_charged} of "
            f"{quote.days_in_month} days)"
        )
    return " and ".join(parts)


# ---- Purchased plans ----


def plans_context(*, account: BillingAccount) -> dict[str, Any]:
    """The account's plans in two lists, open and ended: the same few queries for 1 or 200."""
    rows = purchased_plans(account=account)
    for row in rows:
        if row.subscription.unpaid_period:  # "2026-10" → "October 2026", for the row's note
            month = datetime.strptime(row.subscription.unpaid_period, "%Y-%m")
            row.subscription.unpaid_month = f"{month:%B %Y}"  # type: ignore[attr-defined]
    return {
        "open_rows": [row for row in rows if row.is_open],
        "ended_rows": [row for row in rows if not row.is_open],
    }


@login_required
@require_safe
def my_plans(request: PortalRequest) -> HttpResponse:
    account = billing_account_get_or_create(user=request.user)
    context = {**plans_context(account=account), "developer": request.user, "tab": "plans"}
    return render(request, "billing/subscriptions/plans.html", context)


@admin_required("billing.view_any_purchased_plan")
@require_safe
def people_plans(request: PortalRequest, user_id: int) -> HttpResponse:
    developer = developer_or_404(user_id)
    context = account_context(developer=developer)
    context.update(plans_context(account=context["billing_account"]), tab="plans", admin_view=True)
    return render(request, "billing/subscriptions/plans.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def my_plan_cancel(request: PortalRequest, public_id: uuid.UUID) -> HttpResponse:
    account = billing_account_get_or_create(user=request.user)
    return _cancel(request, account, public_id, {"developer": request.user}, reverse("my_plans"))


@admin_required("billing.update_any_purchased_plan")
@require_http_methods(["GET", "HEAD", "POST"])
def people_plan_cancel(request: PortalRequest, user_id: int, public_id: uuid.UUID) -> HttpResponse:
    developer = developer_or_404(user_id)
    context = {**account_context(developer=developer), "admin_view": True}
    back = reverse("people_plans", args=[developer.pk])
    return _cancel(request, context["billing_account"], public_id, context, back)


def _cancel(
    request: PortalRequest,
    account: BillingAccount,
    public_id: uuid.UUID,
    context: dict[str, Any],
    back: str,
) -> HttpResponse:
    """Ask first; the POST ends the plan now. Another account's plan is 404."""
    subscription = subscription_get(account=account, public_id=str(public_id))
    if subscription is None:
        raise Http404("No such purchased plan.")
    what = f"{subscription.product.display_name} ({subscription.rate_plan.display_name} plan)"
    if subscription.end_time is not None:
        messages.info(request, f"{what} has already ended.")
        return redirect(back)
    if request.method != "POST":
        return render(
            request,
            "billing/subscriptions/cancel.html",
            {**context, "subscription": subscription, "tab": "plans", "back": back},
        )
    subscription_expire(subscription=subscription, actor=Actor.for_user(request.user))
    messages.success(
        request, f"{what} is cancelled: it ended now. The fees already paid are not refunded."
    )
    return redirect(back)
