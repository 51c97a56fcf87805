"""What every page may show the signed-in developer: a plan fee left unpaid, a low balance."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from billing.models import BalanceAlert, Subscription
from billing.notifications.alerts import alert_context, balance_alerts_shown
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


def balance_alerts(request: HttpRequest) -> dict[str, object]:
    # Lazy, as above: the banner until dismissed or topped up.
    return {"balance_alerts": SimpleLazyObject(lambda: _alerts(request))}


def _alerts(request: HttpRequest) -> list[tuple[BalanceAlert, dict[str, object]]]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.is_staff:
        return []
    shown = balance_alerts_shown(user_id=user.pk)
    return [(alert, alert_context(alert, now=True)) for alert in shown]
