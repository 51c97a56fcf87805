"""Demo data for `make run`; running it again changes nothing."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from billing.billing_accounts.services import billing_account_get_or_create
from billing.billing_type.services import billing_type_set
from billing.catalog.rates import Band, ShareRate, share_percentage_parse
from billing.catalog.selectors import api_product_get, rate_plans_of
from billing.catalog.services import PlanSpec, ProductSpec, api_product_create, rate_plan_create
from billing.models import ApiProduct, BillingType, BillingTypeChange, RatePlan
from billing.money import money_parse

DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - printed for the local demo only

DEMO_GATEWAY = "gateway@example.com"
DEMO_USERS = [
    # email, first, last, staff, in "Portal admin" group, own billing type
    ("admin@example.com", "Ada", "Admin", True, True, None),
    ("support@example.com", "Sam", "Support", True, False, None),
    ("prepaid@example.com", "Priya", "Prepaid", False, False, BillingType.PREPAID),
    ("developer@example.com", "Dev", "Default", False, False, None),
]


def _usd(amount: str) -> int:
    return money_parse(amount, "USD").nanos


# What the demo sells, made through the catalog's services so it obeys the catalog's rules.
DEMO_CATALOG = [
    (
        ProductSpec(
            name="weather-api",
            display_name="Weather API",
            description="Forecasts and observations for any place on Earth.",
        ),
        PlanSpec(
            display_name="Standard",
            currency="USD",
            description="The first 100 calls of each month are free.",
            setup_fee=money_parse("10.00", "USD"),
            recurring_fee=money_parse("5.00", "USD"),
            fee_frequency_months=1,
            consumption_pricing_type=RatePlan.ConsumptionPricing.BANDED,
            # Calls 1-100 free, 101-200 at $0.015, from the 201st $0.01 each, every month.
            bands=[
                Band(0, 100, _usd("0")),
                Band(100, 200, _usd("0.015")),
                Band(200, 0, _usd("0.01")),
            ],
            revenue_share_type=RatePlan.RevenueShare.FIXED,
            share_rates=[ShareRate(0, 0, share_percentage_parse("15", "revenue share"))],
            state=RatePlan.State.PUBLISHED,
        ),
    ),
    (
        ProductSpec(
            name="maps-api",
            display_name="Maps API",
            description="Map tiles and geocoding.",
            quota=1000,
            quota_interval=1,
            quota_time_unit=ApiProduct.QuotaTimeUnit.DAY,
        ),
        PlanSpec(
            display_name="Free",
            currency="USD",
            description="Free, up to 1,000 calls a day.",
            state=RatePlan.State.PUBLISHED,
        ),
    ),
]


class Command(BaseCommand):
    help = "Create the demo logins and API products (idempotent) and print them."

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
        # The README's gateway: "Report usage" only, no sign-in (an unusable password).
        gateway, created = User.objects.get_or_create(
            email=DEMO_GATEWAY, defaults={"first_name": "API", "last_name": "Gateway"}
        )
        if created:
            gateway.set_unusable_password()
            gateway.save(update_fields=["password"])
        gateway.user_permissions.add(
            Permission.objects.get(content_type__app_label="billing", codename="report_usage")
        )
        for product_spec, plan_spec in DEMO_CATALOG:
            # Made once: a product that exists (perhaps changed by an admin since) is kept.
            product = api_product_get(name=product_spec.name) or api_product_create(
                spec=product_spec, actor=None
            )
            if not rate_plans_of(product=product, published_only=False).exists():
                rate_plan_create(product=product, spec=plan_spec, actor=None)
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
        self.stdout.write(f"  {DEMO_GATEWAY:<24} API gateway (Report usage; tokens only)")
        self.stdout.write("Demo API products (manage them at /admin/billing/apiproduct/):")
        for product_spec, plan_spec in DEMO_CATALOG:
            name, plan = product_spec.name, plan_spec.display_name
            self.stdout.write(f"  {product_spec.display_name} ({name}): {plan} plan")
