"""Users added in the Django admin: emails are unique whatever their case, as logins and the API
compare them case-insensitively."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from accounts.models import ApiToken, User
from accounts.services import api_token_create
from billing.models import AuditLogEntry, BillingAccount
from tests.factories import AdminFactory

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


def user_change_form(developer: User, account, *, trust_tier: int) -> dict[str, str]:
    """The People admin's change form for a developer, setting the billing account's tier."""
    return {
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
        "billing_account-0-trust_tier": str(trust_tier),
    }


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


def test_changing_a_trust_tier_in_the_admin_is_audited(superuser_client):

    developer = User.objects.create_user("dev@example.com")
    account = BillingAccount.objects.create(user=developer, trust_tier=1)
    url = f"/admin/accounts/user/{developer.pk}/change/"
    data = user_change_form(developer, account, trust_tier=5)

    response = superuser_client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    account.refresh_from_db()
    assert account.trust_tier == 5
    entry = AuditLogEntry.objects.get(action="billing_account.trust_tier.set")
    assert entry.actor.email == "root@example.com" and entry.target_user == developer
    assert (entry.data["before"], entry.data["after"]) == (1, 5)
    # Saving again without a change writes nothing more.
    superuser_client.post(url, data)
    assert AuditLogEntry.objects.filter(action="billing_account.trust_tier.set").count() == 1


def test_revoking_a_token_in_the_admin_is_audited_once(superuser_client):

    developer = User.objects.create_user("dev@example.com")
    token, _ = api_token_create(user=developer, name="gateway")
    action = {"action": "revoke", "_selected_action": [str(token.pk)]}

    superuser_client.post("/admin/accounts/apitoken/", action)
    superuser_client.post("/admin/accounts/apitoken/", action)

    assert ApiToken.objects.get().revoked_at is not None
    revoked = AuditLogEntry.objects.get(action="api_token.revoke")
    assert revoked.actor.email == "root@example.com" and revoked.target_user == developer
    assert revoked.data == {"token": token.prefix, "name": "gateway"}
    assert AuditLogEntry.objects.filter(action="api_token.create").count() == 1


@pytest.mark.parametrize("portal_admin, status", [(True, 200), (False, 403)])
def test_portal_admins_list_and_revoke_tokens_other_staff_cannot(client, portal_admin, status):

    developer = User.objects.create_user("dev@example.com")
    token, _ = api_token_create(user=developer, name="gateway")
    client.force_login(AdminFactory(portal_admin=portal_admin))

    listing = client.get("/admin/accounts/apitoken/")
    client.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})

    assert listing.status_code == status
    if status == 200:
        assert token.prefix in listing.content.decode()
        assert "token_hash" not in listing.content.decode()
    assert (ApiToken.objects.get().revoked_at is not None) == portal_admin


@pytest.mark.parametrize("portal_admin, status", [(True, 200), (False, 403)])
def test_portal_admins_read_the_audit_log_other_staff_cannot(client, portal_admin, status):

    developer = User.objects.create_user("dev@example.com")
    api_token_create(user=developer, name="gateway")  # audited: api_token.create
    client.force_login(AdminFactory(portal_admin=portal_admin))

    listing = client.get("/admin/billing/auditlogentry/")

    assert listing.status_code == status
    if status == 200:
        assert "api_token.create" in listing.content.decode()
        # Read-only for them too: no add link, and no change form.
        assert "/admin/billing/auditlogentry/add/" not in listing.content.decode()
