"""What every page may show: the organisation's support address ("contact us")."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from billing.billing_accounts.selectors import organization_settings_get


def support(request: HttpRequest) -> dict[str, object]:
    # Lazy: read only by the pages that show it.
    return {"support_email": SimpleLazyObject(lambda: organization_settings_get().support_email)}
