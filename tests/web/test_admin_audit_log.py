"""The audit log in the Django admin reads as money, not nanos, one compact line per row."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from billing.ledger.entries import Actor
from billing.ledger.services import wallet_adjust
from billing.models import AuditLogEntry
from tests.conftest import usd

pytestmark = pytest.mark.django_db


def test_an_adjustment_in_the_audit_log_shows_its_amounts_as_money(
    client, portal_admin, prepaid_account
):
    wallet_adjust(
        account=prepaid_account,
        change=usd("12.50"),
        actor=Actor.for_user(portal_admin),
        reason="Goodwill credit " + "x" * 300,
    )
    client.force_login(portal_admin)

    listing = client.get("/admin/billing/auditlogentry/")

    assert listing.status_code == HTTPStatus.OK
    page = listing.content.decode()
    assert "currency: USD, change: $12.50, balance after: $12.50, reason: Goodwill credit" in page
    assert "12500000000" not in page  # no nanos
    assert "x" * 300 not in page  # a long reason is cut in the list …
    entry = AuditLogEntry.objects.get(action="balance.adjust")
    detail = client.get(f"/admin/billing/auditlogentry/{entry.pk}/change/").content.decode()
    assert "x" * 300 in detail  # … and whole on the entry's page
