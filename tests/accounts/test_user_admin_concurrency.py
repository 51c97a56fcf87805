"""The People admin's billing account inline on PostgreSQL: saving a developer's trust tier or
company name writes only those, so a saved card or a billing type changed while the admin's form
was being saved is kept."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test import Client

from accounts.models import User
from billing.models import BillingAccount
from tests.accounts.test_user_admin import user_change_form
from tests.conftest import wait_until_blocked

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def change_trust_tier(developer: User, account: BillingAccount, answers: list[int]) -> None:
    client = Client()
    client.force_login(User.objects.get(email="root@example.com"))
    data = user_change_form(developer, account, trust_tier=3)
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
