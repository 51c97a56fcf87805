"""The People admin's billing account inline on PostgreSQL: saving a developer's trust tier or
company name writes only those, so a saved card or a billing type changed while the admin's form
was being saved is kept."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections
from django.test import Client

from accounts.models import User
from billing.models import BillingAccount

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def wait_until_blocked(thread: threading.Thread) -> bool:
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False


def change_trust_tier(developer: User, account: BillingAccount, answers: list[int]) -> None:
    client = Client()
    client.force_login(User.objects.get(email="root@example.com"))
    data = {
        "email": developer.email,
        "first_name": "",
        "last_name": "",
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
        "billing_account-TOTAL_FORMS": "1",
        "billing_account-INITIAL_FORMS": "1",
        "billing_account-MIN_NUM_FORMS": "0",
        "billing_account-MAX_NUM_FORMS": "1",
        "billing_account-0-id": str(account.pk),
        "billing_account-0-user": str(developer.pk),
        "billing_account-0-legal_company_name": "",
        "billing_account-0-trust_tier": "3",
    }
    try:
        answers.append(
            client.post(f"/admin/accounts/user/{developer.pk}/change/", data).status_code
        )
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("meanwhile", "column", "value"),
    [
        # card_save, after the developer saved a card on Stripe's page
        ("stripe_payment_method_id = 'pm_new', card_last4 = '4444'", "card_last4", "4444"),
        # billing_type_set, from the Billing type tab or the API
        ("billing_type = 'PREPAID'", "billing_type", "PREPAID"),
    ],
)
def test_saving_the_trust_tier_keeps_what_changed_meanwhile(postgres, meanwhile, column, value):
    User.objects.create_superuser("root@example.com", "pw-123456789x")
    developer = User.objects.create_user("dev@example.com")
    account = BillingAccount.objects.create(user=developer, trust_tier=1)
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                f"UPDATE billing_billingaccount SET {meanwhile} WHERE id = %s",  # noqa: S608
                [account.pk],
            )
        answers: list[int] = []
        admin = threading.Thread(target=change_trust_tier, args=(developer, account, answers))
        admin.start()
        # The admin read the account before this change commits, and writes it after.
        assert wait_until_blocked(admin)
        with other.cursor() as cursor:
            cursor.execute("COMMIT")
        admin.join(30)
    finally:
        other.close()

    assert answers == [302]
    account.refresh_from_db()
    assert account.trust_tier == 3
    assert getattr(account, column) == value
