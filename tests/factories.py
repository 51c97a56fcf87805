from __future__ import annotations

from datetime import datetime, timedelta

import factory
from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.models import User
from billing.auto_recharge.settings import auto_recharge_configure
from billing.catalog.services import PlanSpec, rate_plan_create
from billing.models import ApiProduct, BillingAccount, RatePlan
from billing.money import money_parse
from billing.payments.cards import card_save

PASSWORD = "correct-horse-battery-9"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"developer{n}@example.com")
    first_name = factory.Sequence(lambda n: f"First{n}")
    last_name = factory.Sequence(lambda n: f"Last{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified_email(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            self.save()
            EmailAddress.objects.create(user=self, email=self.email, verified=True, primary=True)


class DeveloperFactory(UserFactory):
    billing_account = factory.RelatedFactory(
        "tests.factories.BillingAccountFactory", factory_related_name="user"
    )


class BillingAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BillingAccount

    user = factory.SubFactory(UserFactory)
    billing_type = ""


class AdminFactory(UserFactory):
    """Staff; pass portal_admin=True for the "Portal admin" group and all billing permissions."""

    email = factory.Sequence(lambda n: f"admin{n}@example.com")
    is_staff = True

    @factory.post_generation
    def portal_admin(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create and extracted:
            self.groups.add(Group.objects.get(name="Portal admin"))


def auto_recharge_on(
    account: BillingAccount,
    *,
    threshold: str = "20",
    amount: str = "50",
    mode: str = "FIXED",
    cap: str | None = None,
    currency: str = "USD",
    card: str = "pm_offline_visa_4242",
):
    """A saved test card and auto-recharge switched on, as the developer sets them."""

    card_save(account=account, payment_method_id=card, brand="visa", last4=card[-4:])
    account.refresh_from_db()
    return auto_recharge_configure(
        account=account,
        currency=currency,
        enabled=True,
        threshold=money_parse(threshold, currency),
        mode=mode,
        amount=money_parse(amount, currency),
        monthly_cap=money_parse(cap, currency) if cap else None,
        changed_by=account.user,
    )


class ApiProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiProduct

    name = factory.Sequence(lambda n: f"product-{n}")
    display_name = factory.Sequence(lambda n: f"Product {n}")
    description = "An API to sell."


def published_plan(
    product: ApiProduct | None = None,
    *,
    setup: str = "0",
    recurring: str = "0",
    currency: str = "USD",
    start: datetime | None = None,
    end: datetime | None = None,
    **fields: object,
) -> RatePlan:
    """A PUBLISHED plan in force from `start` (an hour ago by default), made through the
    catalog service so that it obeys the catalog's rules. Fees are decimal text."""
    product = product or ApiProductFactory()
    spec = PlanSpec(
        display_name=str(fields.pop("display_name", "Standard")),
        currency=currency,
        setup_fee=money_parse(setup, currency),
        recurring_fee=money_parse(recurring, currency),
        state=RatePlan.State.PUBLISHED,
        start_time=start or timezone.now() - timedelta(hours=1),
        end_time=end,
        **fields,  # type: ignore[arg-type]
    )
    return rate_plan_create(product=product, spec=spec, actor=None)
