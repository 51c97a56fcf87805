"""Users added in the Django admin: emails are unique whatever their case, as logins and the API
compare them case-insensitively."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from accounts.models import User

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/accounts/user/add/"


def add_user(client, email: str):
    return client.post(
        ADD_URL,
        {
            "email": email,
            "password1": "Zx9-long-password",
            "password2": "Zx9-long-password",
            "usable_password": "true",
            "billing_account-TOTAL_FORMS": "0",
            "billing_account-INITIAL_FORMS": "0",
        },
    )


@pytest.fixture
def superuser_client(client):
    client.force_login(User.objects.create_superuser("root@example.com", "pw-123456789x"))
    return client


def test_the_admin_stores_a_new_users_email_in_lower_case(superuser_client):
    assert add_user(superuser_client, "Alice@Example.com").status_code == 302
    assert User.objects.filter(email="alice@example.com").exists()


def test_the_admin_refuses_an_email_that_differs_from_another_by_case_only(superuser_client):
    add_user(superuser_client, "alice@example.com")
    response = add_user(superuser_client, "ALICE@example.com")
    assert response.status_code == 200
    assert "A user with this email address already exists." in response.content.decode()
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1


def test_the_database_refuses_emails_differing_by_case_only():
    User.objects.create_user("bob@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(email="BOB@example.com")])
