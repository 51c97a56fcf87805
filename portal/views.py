from __future__ import annotations

import unicodedata
from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.core.paginator import Paginator
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from accounts.access import PortalRequest, admin_required, developer_or_404
from accounts.views import account_context
from billing.billing_accounts.services import billing_account_get_or_create
from billing.subscriptions.selectors import plans_open
from billing.usage.reports import usage_month_totals
from billing.web.overview import account_overview
from portal.celery import app as celery_app
from portal.selectors import developers_list

PEOPLE_PER_PAGE = 25


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers, and the trivial baseline of the benchmarks."""
    return HttpResponse("ok", content_type="text/plain")


@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    """For load balancers and orchestrators: 200 only when this process can reach the database
    and, when one is configured, the Celery broker; 503 naming what is down. (/healthz says
    only that the process answers.)"""
    down = [name for name, reachable in _dependencies() if not reachable()]
    if down:
        return HttpResponse(
            "not ready: " + ", ".join(down) + " unreachable",
            status=HTTPStatus.SERVICE_UNAVAILABLE,
            content_type="text/plain",
        )
    return HttpResponse("ready", content_type="text/plain")


def _dependencies() -> list[tuple[str, Callable[[], bool]]]:
    checks: list[tuple[str, Callable[[], bool]]] = [("database", _database_answers)]
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        checks.append(("broker", _broker_answers))
    return checks


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        return False


def _broker_answers() -> bool:
    try:
        with celery_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=READY_TIMEOUT_SECONDS)
        return True
    except Exception:  # kombu raises its transport's own errors: any of them means down
        return False


READY_TIMEOUT_SECONDS = 2


@require_safe
def home(request: PortalRequest) -> HttpResponse:
    """Anonymous visitors: what the portal is. Admins: People. Developers: their money and
    their plans and this month's usage at a glance."""
    user = request.user
    if not user.is_authenticated:
        return render(request, "portal/home.html")
    if user.is_staff:
        return redirect("people_list")
    account = billing_account_get_or_create(user=user)
    context = {
        "developer": user,
        **account_overview(account=account),
        "open_plans": plans_open(account=account),
        "usage_month": f"{timezone.now():%B %Y}",
        "usage_totals": usage_month_totals(account=account, month=f"{timezone.now():%Y-%m}"),
    }
    return render(request, "portal/dashboard.html", context)


@admin_required()
@require_safe
@vary_on_headers("HX-Request")  # the browser must not show a cached table for Back
def people_list(request: PortalRequest) -> HttpResponse:
    """People: one view for the page and, for htmx searches, just the table."""
    search, ignored = _search_typed(request.GET.get("q", ""))
    page = Paginator(developers_list(search=search), PEOPLE_PER_PAGE).get_page(
        request.GET.get("page")
    )
    # A history restore (Back after htmx pushed this address) replaces the whole body.
    table_only = request.htmx and not request.htmx.history_restore_request
    template = "portal/_people_table.html" if table_only else "portal/people_list.html"
    return render(request, template, {"page": page, "search": search, "ignored": ignored})


SEARCH_MAX_LENGTH = 100


def _search_typed(typed: str) -> tuple[str, str]:
    """The search a person typed, and what of it was left out, said in a sentence: control
    characters (PostgreSQL refuses a NUL byte in a query; none is in a name or an address) and
    anything past SEARCH_MAX_LENGTH characters."""
    controls = {ch for ch in typed if unicodedata.category(ch) == "Cc" and not ch.isspace()}
    search = "".join(ch for ch in typed if ch not in controls).strip()
    left_out = []
    if controls:
        codes = ", ".join(f"U+{ord(ch):04X}" for ch in sorted(controls)[:3])
        more = ", …" if len(controls) > 3 else ""
        left_out.append(f"control characters ({codes}{more})")
    if len(search) > SEARCH_MAX_LENGTH:
        search = search[:SEARCH_MAX_LENGTH].strip()
        left_out.append(f"all after the first {SEARCH_MAX_LENGTH} characters")
    ignored = f"Left out of the search: {' and '.join(left_out)}." if left_out else ""
    return search, ignored


@admin_required()
@require_safe
def people_account(request: HttpRequest, user_id: int) -> HttpResponse:
    developer = developer_or_404(user_id)
    context = {**account_context(developer=developer), "tab": "account", "admin_view": True}
    return render(request, "accounts/my_account.html", context)
