from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from accounts.access import PortalRequest, admin_required, developer_or_404
from accounts.views import account_context
from billing.billing_accounts.services import billing_account_get_or_create
from billing.web.overview import account_overview
from portal.selectors import developers_list

PEOPLE_PER_PAGE = 25


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers, and the trivial baseline of the benchmarks."""
    return HttpResponse("ok", content_type="text/plain")


@require_safe
def home(request: PortalRequest) -> HttpResponse:
    """Anonymous visitors: what the portal is. Admins: People. Developers: their money at a
    glance (later also plans, usage and keys)."""
    user = request.user
    if not user.is_authenticated:
        return render(request, "portal/home.html")
    if user.is_staff:
        return redirect("people_list")
    account = billing_account_get_or_create(user=user)
    return render(
        request, "portal/dashboard.html", {"developer": user, **account_overview(account=account)}
    )


@admin_required()
@require_safe
@vary_on_headers("HX-Request")  # the browser must not show a cached table for Back
def people_list(request: PortalRequest) -> HttpResponse:
    """People: one view for the page and, for htmx searches, just the table."""
    search = request.GET.get("q", "").strip()[:100]
    page = Paginator(developers_list(search=search), PEOPLE_PER_PAGE).get_page(
        request.GET.get("page")
    )
    # A history restore (Back after htmx pushed this address) replaces the whole body.
    table_only = request.htmx and not request.htmx.history_restore_request
    template = "portal/_people_table.html" if table_only else "portal/people_list.html"
    return render(request, template, {"page": page, "search": search})


@admin_required()
@require_safe
def people_account(request: HttpRequest, user_id: int) -> HttpResponse:
    developer = developer_or_404(user_id)
    context = {**account_context(developer=developer), "tab": "account", "admin_view": True}
    return render(request, "accounts/my_account.html", context)
