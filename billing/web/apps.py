"""Apps and their API keys: the developer's own (create, add a key, revoke a key, delete an
app, each change behind a form and the destructive ones behind a confirmation), and a
developer's for admins with "Administer monetization", who may revoke a key.

A new key is shown once, in the answer to the form that made it; it is never stored (nor put
in the session), so that page is not cached and a reload does not show it again."""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.access import PortalRequest, admin_required, developer_or_404
from accounts.views import account_context
from billing.billing_accounts.services import billing_account_get_or_create
from billing.developer_apps.selectors import app_get_by_public_id, apps_of, products_allowed
from billing.developer_apps.services import (
    APP_NAME_RULE,
    app_create,
    app_delete,
    app_key_add,
    app_key_revoke,
)
from billing.exceptions import AlreadyExists, BillingError
from billing.ledger.entries import Actor
from billing.models import ApiProduct, AppKey, BillingAccount, DeveloperApp

ADMINISTER = "billing.administer_monetization"


class AppForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="App name",
        help_text=APP_NAME_RULE,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    products = forms.MultipleChoiceField(
        required=False,
        label="API products it calls",
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, allowed: list[ApiProduct], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allowed = {product.name: product for product in allowed}
        products = self.fields["products"]
        assert isinstance(products, forms.MultipleChoiceField)
        products.choices = [(p.name, p.display_name) for p in allowed]

    def chosen(self) -> list[ApiProduct]:
        return [self.allowed[name] for name in self.cleaned_data["products"]]


def _developer_only(request: PortalRequest) -> BillingAccount:
    if request.user.is_staff:
        raise PermissionDenied(
            "Apps belong to developers: an administrator sees a developer's apps under People."
        )
    return billing_account_get_or_create(user=request.user)


def _app_or_404(account: BillingAccount, public_id: uuid.UUID) -> DeveloperApp:
    app = app_get_by_public_id(account=account, public_id=str(public_id))
    if app is None:
        raise Http404("No such app.")
    return app


def _key_or_404(app: DeveloperApp, prefix: str) -> AppKey:
    for key in app.keys.all():  # prefetched
        if key.prefix == prefix:
            return key
    raise Http404("No such key.")


def _apps_page(
    request: PortalRequest,
    context: dict[str, Any],
    *,
    form: AppForm | None = None,
    new_key: tuple[DeveloperApp, str] | None = None,
    status: int = HTTPStatus.OK,
) -> HttpResponse:
    account: BillingAccount = context["billing_account"]
    if form is None and not context.get("admin_view"):
        form = AppForm(allowed=products_allowed(account=account))
    context = {
        **context,
        "apps": list(apps_of(account=account)),
        "form": form,
        "tab": "apps",
        "new_key_app": new_key[0] if new_key else None,
        "new_key": new_key[1] if new_key else "",
    }
    response = render(request, "billing/developer_apps/apps.html", context, status=status)
    if new_key:
        add_never_cache_headers(response)
    return response


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def my_apps(request: PortalRequest) -> HttpResponse:
    """The apps; a POST creates one and shows its key, once."""
    account = _developer_only(request)
    context = {"developer": request.user, "billing_account": account}
    if request.method != "POST":
        return _apps_page(request, context)
    form = AppForm(request.POST, allowed=products_allowed(account=account))
    if not form.is_valid():
        return _apps_page(request, context, form=form, status=HTTPStatus.BAD_REQUEST)
    try:
        app, raw = app_create(
            account=account,
            name=form.cleaned_data["name"],
            products=form.chosen(),
            actor=Actor.for_user(request.user),
        )
    except AlreadyExists as exc:
        form.add_error("name", str(exc))
        return _apps_page(request, context, form=form, status=HTTPStatus.CONFLICT)
    except BillingError as exc:
        form.add_error(None, str(exc))
        return _apps_page(request, context, form=form, status=HTTPStatus.BAD_REQUEST)
    messages.success(request, f"App {app.name} created.")
    return _apps_page(request, context, new_key=(app, raw))


@login_required
@require_POST
def my_app_key_add(request: PortalRequest, public_id: uuid.UUID) -> HttpResponse:
    account = _developer_only(request)
    app = _app_or_404(account, public_id)
    _key, raw = app_key_add(app=app, actor=Actor.for_user(request.user))
    messages.success(request, f"A new key was added to {app.name}.")
    context = {"developer": request.user, "billing_account": account}
    return _apps_page(request, context, new_key=(app, raw))


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def my_app_key_revoke(request: PortalRequest, public_id: uuid.UUID, prefix: str) -> HttpResponse:
    account = _developer_only(request)
    context = {"developer": request.user, "billing_account": account}
    return _revoke(request, _app_or_404(account, public_id), prefix, context, reverse("my_apps"))


@admin_required(ADMINISTER)
@require_http_methods(["GET", "HEAD", "POST"])
def people_app_key_revoke(
    request: PortalRequest, user_id: int, public_id: uuid.UUID, prefix: str
) -> HttpResponse:
    developer = developer_or_404(user_id)
    context = {**account_context(developer=developer), "admin_view": True}
    app = _app_or_404(context["billing_account"], public_id)
    return _revoke(request, app, prefix, context, reverse("people_apps", args=[developer.pk]))


def _revoke(
    request: PortalRequest, app: DeveloperApp, prefix: str, context: dict[str, Any], back: str
) -> HttpResponse:
    """Ask first; the POST revokes the key at once. Another account's key is 404."""
    key = _key_or_404(app, prefix)
    if key.status == AppKey.Status.REVOKED:
        messages.info(request, f"Key {key.prefix}… of {app.name} was already revoked.")
        return redirect(back)
    if request.method != "POST":
        context = {**context, "app": app, "key": key, "tab": "apps", "back": back}
        return render(request, "billing/developer_apps/key_revoke.html", context)
    app_key_revoke(key=key, actor=Actor.for_user(request.user))
    messages.success(
        request, f"Key {key.prefix}… of {app.name} is revoked: calls with it are refused now."
    )
    return redirect(back)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def my_app_delete(request: PortalRequest, public_id: uuid.UUID) -> HttpResponse:
    account = _developer_only(request)
    app = _app_or_404(account, public_id)
    if request.method != "POST":
        context = {"developer": request.user, "app": app, "tab": "apps", "back": reverse("my_apps")}
        return render(request, "billing/developer_apps/app_delete.html", context)
    name = app.name
    app_delete(app=app, actor=Actor.for_user(request.user))
    messages.success(request, f"App {name} is deleted: its keys are refused now.")
    return redirect("my_apps")


@admin_required(ADMINISTER)
@require_safe
def people_apps(request: PortalRequest, user_id: int) -> HttpResponse:
    developer = developer_or_404(user_id)
    context = {**account_context(developer=developer), "admin_view": True}
    return _apps_page(request, context)
