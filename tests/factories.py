from __future__ import annotations

import factory
from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group

from accounts.models import User
from billing.auto_recharge.settings import auto_recharge_configure
from billing.models import BillingAccount
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
