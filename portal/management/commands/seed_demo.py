"""Demo data for `make run`; running it again changes nothing."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from billing.billing_accounts.services import billing_account_get_or_create
from billing.billing_type.services import billing_type_set
from billing.models import BillingType, BillingTypeChange

DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - printed for the local demo only

DEMO_USERS = [
    # email, first, last, staff, in "Portal admin" group, own billing type
    ("admin@example.com", "Ada", "Admin", True, True, None),
    ("support@example.com", "Sam", "Support", True, False, None),
    ("prepaid@example.com", "Priya", "Prepaid", False, False, BillingType.PREPAID),
    ("developer@example.com", "Dev", "Default", False, False, None),
]


class Command(BaseCommand):
    help = "Create the demo logins (idempotent) and print them."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        if settings.HTTPS_ONLY:
            # The demo passwords are printed and published: never on a production portal.
            raise CommandError(
                "seed_demo creates logins with a published password; it does not run with "
                "DJANGO_SECURE_COOKIES=true (production)."
            )
        portal_admins = Group.objects.get(name="Portal admin")
        for email, first, last, staff, in_group, billing_type in DEMO_USERS:
            user, created = User.objects.get_or_create(
                email=email, defaults={"first_name": first, "last_name": last, "is_staff": staff}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
            EmailAddress.objects.get_or_create(
                user=user, email=email, defaults={"verified": True, "primary": True}
            )
            if in_group:
                user.groups.add(portal_admins)
            account = billing_account_get_or_create(user=user)
            if created and billing_type:
                billing_type_set(
                    account=account,
                    billing_type=billing_type,
                    changed_by=None,
                    source=BillingTypeChange.Source.ADMIN,
                )
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for email, _first, _last, staff, in_group, billing_type in DEMO_USERS:
            role = (
                "portal admin (all billing permissions)"
                if in_group
                else "admin without billing permissions"
                if staff
                else f"developer, billing type {billing_type.label if billing_type else 'not set'}"
            )
            self.stdout.write(f"  {email:<24} {role}")
