"""What every page may show about the signed-in developer's plans: a fee left unpaid."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from billing.models import Subscription
from billing.subscriptions.selectors import subscriptions_unpaid_of


def unpaid_plans(request: HttpRequest) -> dict[str, object]:
    # Lazy: one query, made only by a page that shows the banner, and none for anonymous
    # visitors or administrators (who buy nothing).
    return {"unpaid_plans": SimpleLazyObject(lambda: _unpaid(request))}


def _unpaid(request: HttpRequest) -> list[Subscription]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.is_staff:
        return []
    return subscriptions_unpaid_of(user_id=user.pk)
