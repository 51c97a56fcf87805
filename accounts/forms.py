from __future__ import annotations

import functools

from babel import Locale
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

    address = forms.CharField(
        max_length=500,
        required=False,
        label="Address",
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "street-address"}),
        help_text="As it should appear on your statements, on as many lines as it needs.",
    )
    country = forms.ChoiceField(
        required=False,
        label="Country",
        choices=(),
        widget=forms.Select(attrs={"autocomplete": "country"}),
    )
    tax_id = forms.CharField(
        max_length=50,
        required=False,
        label="Tax id",
        help_text="Your VAT or other tax registration number, if you have one.",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["country"].choices = [("", "—"), *countries()]  # type: ignore[attr-defined]

    def clean_legal_company_name(self) -> str:
        return _one_line(self.cleaned_data["legal_company_name"], "The company name")

    def clean_tax_id(self) -> str:
        return _one_line(self.cleaned_data["tax_id"], "The tax id")

    def clean_address(self) -> str:
        lines = [line.strip() for line in self.cleaned_data["address"].splitlines()]
        if not all(line.isprintable() for line in lines):
            raise forms.ValidationError("The address cannot hold control characters.")
        return "\n".join(line for line in lines if line)


def _one_line(value: str, what: str) -> str:
    value = value.strip()
    if not value.isprintable():
        raise forms.ValidationError(f"{what} must be one line of text.")
    return value


@functools.cache
def countries() -> list[tuple[str, str]]:
    """ISO 3166-1 alpha-2 codes with their English names, by name (Babel's list)."""
    names = Locale("en").territories
    return sorted(
        ((code, name) for code, name in names.items() if len(code) == 2 and code.isalpha()),
        key=lambda pair: pair[1],
    )
