from __future__ import annotations

import factory
from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group

from accounts.models import User
from billing.models import BillingAccount

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
