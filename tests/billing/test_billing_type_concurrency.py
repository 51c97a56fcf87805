"""Two admins confirm different billing types for one developer at the same moment, on
PostgreSQL: exactly one change lands, the other is told to look again."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from billing.exceptions import BillingTypeConflict
from billing.models import BillingAccount, BillingTypeChange
from billing.services import billing_type_set
from tests.factories import AdminFactory, DeveloperFactory


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_confirmations_one_wins(postgres):
    developer = DeveloperFactory()
    admins = [AdminFactory(portal_admin=True) for _ in range(8)]
    barrier = threading.Barrier(len(admins))
    outcomes: list[str] = []

    def confirm(admin, billing_type: str) -> None:
        try:
            barrier.wait()
            billing_type_set(
                account=developer.billing_account,
                billing_type=billing_type,
                changed_by=admin,
                source=BillingTypeChange.Source.ADMIN,
                expected_current="",
            )
            outcomes.append("saved")
        except BillingTypeConflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=confirm, args=(admin, "PREPAID" if i % 2 else "POSTPAID"))
        for i, admin in enumerate(admins)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["conflict"] * 7 + ["saved"]
    account = BillingAccount.objects.get(pk=developer.billing_account.pk)
    changes = list(BillingTypeChange.objects.filter(billing_account=account))
    # Only a change to Prepaid alters the effective type (the default is Postpaid).
    assert len(changes) == (1 if account.billing_type == "PREPAID" else 0)
    assert account.billing_type in {"PREPAID", "POSTPAID"}
