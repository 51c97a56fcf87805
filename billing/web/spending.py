"""The balance page's spending panel for prepaid wallets: the burn rate (average daily spend over
the last 7 days), how many days the balance lasts at it, a 30-day balance chart, and the
developer's own low-balance alert amount."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from accounts.access import PortalRequest
from billing.ledger.selectors import wallet_daily_balances
from billing.models import BillingAccount, Wallet
from billing.money import Money, MoneyError, money_from_input
from billing.notifications.alerts import (
    alert_amount_set,
    burn_rate,
    days_left,
    organization_alert_percents,
    to_cents,
)
from billing.tasks import balance_alerts_run

CHART_WIDTH, CHART_HEIGHT = 620, 140


@dataclass(frozen=True)
class Spending:
    wallet: Wallet
    burn_rate: Money
    days_left: int | None
    chart: dict
    alert_amount: Money | None


def spending_panels(*, account: BillingAccount) -> list[Spending]:
    panels = []
    for wallet in Wallet.objects.filter(billing_account=account).order_by("id"):
        rate = burn_rate(wallet)
        balances = wallet_daily_balances(wallet=wallet)
        amount = Money(wallet.alert_amount, wallet.currency) if wallet.alert_amount else None
        panels.append(
            Spending(
                wallet,
                to_cents(Money(rate, wallet.currency)),
                days_left(wallet.balance, rate),
                _chart(balances, wallet.currency),
                amount,
            )  # fmt: skip
        )
    return panels


def alert_percents_text() -> str:
    return ", ".join(f"{p} %" for p in organization_alert_percents())


def _chart(balances: list, currency: str) -> dict:
    """A server-drawn line (no script): the balance at the end of each day, 0 marked."""
    values = [nanos for _, nanos in balances]
    high, low = max(max(values), 0), min(min(values), 0)
    span = (high - low) or 1
    step = CHART_WIDTH / max(len(values) - 1, 1)

    def y(nanos: int) -> float:
        return round(CHART_HEIGHT - 16 - (nanos - low) / span * (CHART_HEIGHT - 28), 1)

    points = " ".join(f"{round(n * step, 1)},{y(v)}" for n, v in enumerate(values))
    return {
        "points": points,
        "zero_y": y(0),
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "high": Money(high, currency),
        "first_day": balances[0][0],
        "last_day": balances[-1][0],
    }


class AlertAmountForm(forms.Form):
    amount = forms.CharField(
        required=False,
        max_length=40,
        label="Also alert me at",
        help_text="A balance to be told about, besides the percentages. Leave empty for none.",
    )

    def __init__(self, *args: object, currency: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.currency = currency

    def clean_amount(self) -> Money | None:
        text = self.cleaned_data["amount"].strip()
        if not text:
            return None
        try:
            money = money_from_input(text, self.currency)
        except MoneyError as error:
            raise forms.ValidationError(str(error)) from None
        if money.nanos <= 0:
            raise forms.ValidationError("Give an amount above zero, or leave it empty.")
        return money


@login_required
@require_POST
def alert_amount(request: PortalRequest, currency: str) -> HttpResponse:
    wallet = Wallet.objects.filter(billing_account__user=request.user, currency=currency).first()
    if wallet is None:
        raise Http404
    form = AlertAmountForm(request.POST, currency=currency)
    if form.is_valid():
        money = form.cleaned_data["amount"]
        alert_amount_set(wallet=wallet, amount=money)
        balance_alerts_run.delay(wallet.billing_account_id, currency)  # arm the new thresholds
        if money is None:
            messages.success(request, f"No {currency} alert at an amount of your own.")
        else:
            messages.success(
                request, f"You will also be alerted when your {currency} balance falls to {money}."
            )
    else:
        messages.error(request, " ".join(str(error) for error in form.errors["amount"]))
    return redirect("my_balance")
