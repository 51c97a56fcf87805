"""Statements: per currency, the months a developer can read (at most the organisation's billing
history limit), each as a page, as CSV and as PDF; for the developer and (with "View any prepaid
balance") for admins under People."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from accounts.access import PortalRequest, admin_required, developer_or_404
from accounts.models import User
from accounts.views import account_context
from billing.billing_accounts.selectors import organization_settings_get
from billing.billing_accounts.services import billing_account_get_or_create
from billing.models import BillingAccount
from billing.money import currency_validate
from billing.statements.documents import statement_csv, statement_pdf
from billing.statements.selectors import (
    Statement,
    statement_available,
    statement_get,
    statement_months,
)

FORMATS = ("html", "csv", "pdf")


@login_required
@require_safe
def my_statements(request: PortalRequest) -> HttpResponse:
    if request.user.is_staff:
        raise Http404  # admins have no balance of their own; they look under People
    account = billing_account_get_or_create(user=request.user)
    return _list(request, account, {"developer": request.user})


@admin_required("billing.view_any_prepaid_balance")
@require_safe
def people_statements(request: PortalRequest, user_id: int) -> HttpResponse:
    developer = developer_or_404(user_id)
    context = {**account_context(developer=developer), "admin_view": True}
    return _list(request, context["billing_account"], context)


@login_required
@require_safe
def my_statement(request: PortalRequest, currency: str, month: str, fmt: str) -> HttpResponse:
    if request.user.is_staff:
        raise Http404
    account = billing_account_get_or_create(user=request.user)
    return _one(request, account, request.user, {"developer": request.user}, currency, month, fmt)


@admin_required("billing.view_any_prepaid_balance")
@require_safe
def people_statement(
    request: PortalRequest, user_id: int, currency: str, month: str, fmt: str
) -> HttpResponse:
    developer = developer_or_404(user_id)
    context = {**account_context(developer=developer), "admin_view": True}
    account = context["billing_account"]
    return _one(request, account, developer, context, currency, month, fmt)


def _list(request: PortalRequest, account: BillingAccount, context: dict) -> HttpResponse:
    context.update(
        currencies=[
            (currency, [(month, _month_label(month)) for month in months])
            for currency, months in statement_months(account=account)
        ],
        history_months=organization_settings_get().billing_history_months,
        tab="statements",
    )
    return render(request, "billing/statements/list.html", context)


def _one(
    request: PortalRequest,
    account: BillingAccount,
    developer: User,
    context: dict,
    currency: str,
    month: str,
    fmt: str,
) -> HttpResponse:
    statement = _statement_or_404(account, currency, month)
    if fmt == "csv":
        response = HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
        return _attachment(response, statement, "csv")
    if fmt == "pdf":
        pdf = statement_pdf(statement, title=_title(statement), provider=_provider())
        return _attachment(HttpResponse(pdf, content_type="application/pdf"), statement, "pdf")
    context.update(statement=statement, title=_title(statement), tab="statements")
    return render(request, "billing/statements/statement.html", context)


def _statement_or_404(account: BillingAccount, currency: str, month: str) -> Statement:
    try:
        currency = currency_validate(currency)
    except ValueError:
        raise Http404 from None
    if not statement_available(account=account, currency=currency, month=month):
        raise Http404("No statement for that currency and month.")
    return statement_get(account=account, currency=currency, month=month)


def _month_label(month: str) -> str:
    return datetime.strptime(month, "%Y-%m").strftime("%B %Y")


def _title(statement: Statement) -> str:
    return f"Statement for {statement.start:%B %Y}, {statement.currency}"


def _provider() -> str:
    return f"Developer portal ({settings.PORTAL_ORG})"


def _attachment(response: HttpResponse, statement: Statement, extension: str) -> HttpResponse:
    return attachment(response, f"statement-{statement.currency}-{statement.month}.{extension}")


def attachment(response: HttpResponse, filename: str) -> HttpResponse:
    """A download of private data: saved under `filename`, kept in no cache."""
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response
