"""Sign-up and password mail when the mail server is down: a clear message, not a 500, and the
mail can be had again once the server is back."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts.models import User
from billing.models import BillingAccount
from tests.fakes.silent_server import deadline, silent_server

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-enough-passphrase"
NOT_SENT = "We could not send you an email just now: our mail server did not answer."


@pytest.fixture
def smtp_down(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens: refused


def test_signup_while_the_mail_server_is_down_says_so_and_the_mail_follows_at_sign_in(
    smtp_down, settings
):
    browser = Client(raise_request_exception=False)
    response = browser.post(
        reverse("account_signup"),
        {
            "email": "new.dev@example.com",
            "first_name": "New",
            "last_name": "Dev",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    page = response.content.decode()
    assert NOT_SENT in page
    assert "sign in to have the confirmation email sent again" in page
    assert "We have sent" not in page
    user = User.objects.get(email="new.dev@example.com")
    assert BillingAccount.objects.filter(user=user).exists()

    # Minutes later the mail server is back: signing in sends the confirmation email again.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    cache.clear()  # allauth's three-minute pause between confirmation emails has passed
    browser.post(reverse("account_login"), {"login": "new.dev@example.com", "password": PASSWORD})
    [confirmation] = mail.outbox
    assert re.search(r"/accounts/confirm-email/\S+/", confirmation.body)


def test_a_password_reset_while_the_mail_server_is_down_says_it_was_not_sent(smtp_down, developer):
    response = Client(raise_request_exception=False).post(
        reverse("account_reset_password"), {"email": developer.email}
    )

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    page = response.content.decode()
    assert NOT_SENT in page
    assert "Please try again in a few minutes." in page


def test_signup_while_the_mail_server_hangs_answers_within_seconds(settings):
    with silent_server() as port:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        with deadline(40):  # a web server's worker timeout is 30 s
            response = Client(raise_request_exception=False).post(
                reverse("account_signup"),
                {
                    "email": "new.dev@example.com",
                    "first_name": "New",
                    "last_name": "Dev",
                    "password1": PASSWORD,
                    "password2": PASSWORD,
                },
            )

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert NOT_SENT in response.content.decode()
