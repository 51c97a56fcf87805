"""Who may see which page: anonymous users go to login, outsiders get 404, admins lacking a
permission get 403. One place, so every admin view answers the same way."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Permission
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from accounts.models import User

View = Callable[..., HttpResponse]


def admin_required(permission: str | None = None) -> Callable[[View], View]:
    """Staff only (others: 404, as if the page did not exist); with `permission`, 403 without it."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not (user.is_active and user.is_staff):
                raise Http404("No such page.")
            if permission and not user.has_perm(permission):
                raise PermissionDenied(f"You need the “{permission_title(permission)}” permission.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def permission_title(permission: str) -> str:
    app_label, codename = permission.split(".", 1)
    found = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
    return found.name if found else permission


if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

    class PortalRequest(HttpRequest):
        """A request past login_required/admin_required, with django-htmx's details."""

        user: User  # type: ignore[assignment]
        htmx: HtmxDetails
else:
    PortalRequest = HttpRequest


def developer_or_404(user_id: int) -> User:
    """A developer (not staff) by id, for the admin pages about them; anybody else is 404."""
    return get_object_or_404(User, pk=user_id, is_staff=False)
