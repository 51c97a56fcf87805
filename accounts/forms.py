from __future__ import annotations

from django import forms
from django.http import HttpRequest

from accounts.models import User


class SignupForm(forms.Form):
    """Extra sign-up fields; allauth adds email and password around them."""

    # autocomplete: browsers and password managers fill the names in (WCAG 1.3.5).
    first_name = forms.CharField(
        max_length=150,
        label="First name",
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    last_name = forms.CharField(
        max_length=150,
        label="Last name",
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )

    def signup(self, request: HttpRequest, user: User) -> None:
        # allauth has already copied the cleaned names onto the user and will save it.
        pass


class BillingDetailsForm(forms.Form):
    legal_company_name = forms.CharField(
        max_length=200,
        required=False,
        label="Legal company name",
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
        help_text="Shown on invoices and receipts. Leave empty if you pay as an individual.",
    )

    def clean_legal_company_name(self) -> str:
        return self.cleaned_data["legal_company_name"].strip()
