"""Usage: calls and charges per product and day of a month, with a chart, for the developer and
(with "View any prepaid balance") for admins; and the events behind one usage ledger entry."""

from __future__ import annotations

import calendar
from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from accounts.access import PortalRequest, admin_required, developer_or_404
from accounts.models import User
from accounts.views import account_context
from billing.billing_accounts.services import billing_account_get_or_create
from billing.models import BillingAccount
from billing.usage.reports import (
    usage_entry_events,
    usage_entry_get,
    usage_entry_span,
    usage_months,
    usage_of_month,
)

CHART_WIDTH, CHART_HEIGHT = 620, 160
EVENTS_PER_PAGE = 50


def _month(text: str) -> str:
    """The chosen month, "YYYY-MM"; this month when none or a malformed one is asked for."""
    try:
        return datetime.strptime(text, "%Y-%m").strftime("%Y-%m") if text else _this_month()
    except ValueError:
        return _this_month()


def _this_month() -> str:
    return f"{timezone.now():%Y-%m}"


def _chart(calls_by_day: list[tuple[int, int]]) -> dict:
    """Bars for a server-rendered SVG (no script, nothing inline for the CSP to refuse)."""
    most = max((calls for _, calls in calls_by_day), default=0) or 1
    width = CHART_WIDTH / max(len(calls_by_day), 1)
    bars = []
    for n, (day, calls) in enumerate(calls_by_day):
        height = round(calls / most * (CHART_HEIGHT - 20), 1)
        bars.append(
            {
                "x": round(n * width + 1, 1),
                "y": round(CHART_HEIGHT - 14 - height, 1),
                "width": round(width - 2, 1),
                "height": height,
                "day": day,
                "calls": calls,
                "label_x": round(n * width + width / 2, 1),
            }
        )
    return {"bars": bars, "width": CHART_WIDTH, "height": CHART_HEIGHT, "most": most}


def _usage_context(request: PortalRequest, account: BillingAccount) -> dict:
    month = _month(request.GET.get("month", ""))
    year, number = (int(part) for part in month.split("-"))
    days = calendar.monthrange(year, number)[1]
    usage = usage_of_month(account=account, month=month, days_in_month=days)
    months = usage_months(account=account)
    if month not in months:
        months = sorted({*months, month, _this_month()}, reverse=True)
    return {
        "usage": usage,
        "month": month,
        "month_label": datetime(year, number, 1).strftime("%B %Y"),
        "months": [(m, datetime.strptime(m, "%Y-%m").strftime("%B %Y")) for m in months],
        "chart": _chart(usage.calls_by_day),
        "tab": "usage",
    }


@login_required
@require_safe
def my_usage(request: PortalRequest) -> HttpResponse:
    if request.user.is_staff:
        raise Http404  # admins have no usage of their own; they look under People
    account = billing_account_get_or_create(user=request.user)
    context = {**_usage_context(request, account), "developer": request.user}
    return render(request, "billing/usage/usage.html", context)


@admin_required("billing.view_any_prepaid_balance")
@require_safe
def people_usage(request: PortalRequest, user_id: int) -> HttpResponse:
    developer = developer_or_404(user_id)
    context = account_context(developer=developer)
    context.update(_usage_context(request, context["billing_account"]), admin_view=True)
    return render(request, "billing/usage/usage.html", context)


def _entry_page(request: PortalRequest, developer: User, context: dict, entry_id: int):
    account = billing_account_get_or_create(user=developer)
    entry = usage_entry_get(account=account, entry_id=entry_id)
    if entry is None:
        raise Http404
    events = Paginator(usage_entry_events(entry=entry), EVENTS_PER_PAGE)
    first, last = usage_entry_span(entry=entry)
    context.update(
        entry=entry,
        page=events.get_page(request.GET.get("page")),
        first=first,
        last=last,
        tab="usage",
    )
    return render(request, "billing/usage/entry.html", context)


@login_required
@require_safe
def my_usage_entry(request: PortalRequest, entry_id: int) -> HttpResponse:
    if request.user.is_staff:
        raise Http404
    return _entry_page(request, request.user, {"developer": request.user}, entry_id)


@admin_required("billing.view_any_prepaid_balance")
@require_safe
def people_usage_entry(request: PortalRequest, user_id: int, entry_id: int) -> HttpResponse:
    developer = developer_or_404(user_id)
    context = {**account_context(developer=developer), "admin_view": True}
    return _entry_page(request, developer, context, entry_id)
