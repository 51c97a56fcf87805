"""The revenue report (admins with "View revenue reports"): totals per product and per
developer for one currency and a range of days, on the page and as CSV."""

from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from accounts.access import PortalRequest, admin_required
from billing.models import RatePlan, Wallet
from billing.statements.documents import csv_text
from billing.statements.revenue import COLUMNS, revenue_report, revenue_rows
from billing.web.statements import attachment

LONGEST_RANGE = timedelta(days=366)


class RevenueReportForm(forms.Form):
    currency = forms.ChoiceField(label="Currency")
    first_day = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    last_day = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data: dict[str, str], *, currencies: list[str]) -> None:
        super().__init__(data)
        self.fields["currency"].choices = [(c, c) for c in currencies]  # type: ignore[attr-defined]

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        first, last = cleaned.get("first_day"), cleaned.get("last_day")
        today = timezone.now().date()
        if first and first > today:
            self.add_error("first_day", "The from date cannot be in the future.")
        if first and last and last < first:
            self.add_error("last_day", "The to date cannot be before the from date.")
        elif first and last and last - first >= LONGEST_RANGE:
            self.add_error("last_day", "Choose at most a year at a time.")
        return cleaned


def _currencies() -> list[str]:
    """The currencies money moved or is priced in; USD when there is none yet."""
    wallets = set(Wallet.objects.values_list("currency", flat=True).distinct())
    plans = set(RatePlan.objects.values_list("currency", flat=True).distinct())
    return sorted(wallets | plans) or ["USD"]


def _defaults(currencies: list[str]) -> dict[str, str]:
    today = timezone.now().date()
    return {
        "currency": currencies[0],
        "first_day": str(today.replace(day=1)),
        "last_day": str(today),
    }


@admin_required("billing.view_revenue_reports")
@require_safe
def revenue_report_view(request: PortalRequest) -> HttpResponse:
    asked = {
        key: request.GET[key] for key in ("currency", "first_day", "last_day") if key in request.GET
    }
    currencies = _currencies()
    form = RevenueReportForm(asked or _defaults(currencies), currencies=currencies)
    report = None
    if form.is_valid():
        data = form.cleaned_data
        report = revenue_report(
            currency=data["currency"], first_day=data["first_day"], last_day=data["last_day"]
        )
        if request.GET.get("format") == "csv":
            return _csv(report, data["first_day"], data["last_day"])
    context = {"form": form, "report": report, "columns": COLUMNS, "query": request.GET.urlencode()}
    return render(request, "billing/reports/revenue.html", context)


def _csv(report, first_day: date, last_day: date) -> HttpResponse:  # type: ignore[no-untyped-def]
    response = HttpResponse(csv_text(revenue_rows(report)), content_type="text/csv; charset=utf-8")
    return attachment(response, f"revenue-{report.currency}-{first_day}-to-{last_day}.csv")
