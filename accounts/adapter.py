from __future__ import annotations

import logging
import smtplib
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from allauth.core.exceptions import ImmediateHttpResponse
from django import forms
from django.http import HttpRequest
from django.shortcuts import render

from accounts.models import User
from billing.billing_accounts.services import billing_account_get_or_create

logger = logging.getLogger(__name__)


class AccountAdapter(DefaultAccountAdapter):
    def clean_email(self, email: str) -> str:
        """Sign-up, Add email and Reset password: an address longer than the account can hold
        is refused, never stored cut short (Django's validator takes up to 320 characters)."""
        email = super().clean_email(email)
        longest = User._meta.get_field("email").max_length
        if longest is not None and len(email) > longest:
            raise forms.ValidationError(
                f"An email address can have at most {longest} characters; this one has "
                f"{len(email)}."
            )
        return email

    def save_user(self, request: HttpRequest, user: User, form: Any, commit: bool = True) -> User:
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            # Every developer gets a billing account at sign-up, with no billing type of their own.
            billing_account_get_or_create(user=user)
        return user

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """A mail server that is down must not turn a saved sign-up (or a password reset) into
        a server error, nor be followed by allauth's 'we have sent you an email': say that it
        was not sent and how to get it."""
        try:
            super().send_mail(template_prefix, email, context)
        except (smtplib.SMTPException, OSError) as exc:
            request = allauth_context.request
            if request is None:  # not on a page (a management command): let the caller see it
                raise
            logger.exception("Could not send %s to %s", template_prefix, email)
            page = render(
                request,
                "account/mail_not_sent.html",
                {"confirmation": "email_confirmation" in template_prefix},
                status=503,
            )
            raise ImmediateHttpResponse(page) from exc
