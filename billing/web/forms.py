"""The forms of billing's pages: they parse what a person typed; the services decide."""

from __future__ import annotations

from collections.abc import Sequence

from django import forms

from billing.models import BillingType, LedgerEntry
from billing.money import (
    MoneyError,
    currency_decimals,
    money_parse,
    stripe_amount_check,
    stripe_currency_check,
)


class BillingTypeForm(forms.Form):
    billing_type = forms.ChoiceField(
        choices=BillingType.choices,
        widget=forms.RadioSelect,
        label="Billing type",
        error_messages={
            "required": "Choose Postpaid or Prepaid.",
            "invalid_choice": "“%(value)s” is not a billing type: choose Postpaid or Prepaid.",
        },
    )


class BillingTypeConfirmForm(BillingTypeForm):
    # The stored type the admin saw: a change made meanwhile is detected instead of overwritten.
    expected_current = forms.ChoiceField(
        choices=[("", "Not specified"), *BillingType.choices], required=False
    )


class OrganizationSettingsForm(forms.Form):
    default_billing_type = forms.ChoiceField(
        choices=BillingType.choices,
        widget=forms.RadioSelect,
        label="Default billing type",
        error_messages={
            "required": "Choose Postpaid or Prepaid.",
            "invalid_choice": "“%(value)s” is not a billing type: choose Postpaid or Prepaid.",
        },
    )


class HistoryFilterForm(forms.Form):
    kind = forms.ChoiceField(choices=[("", "All kinds")], required=False, label="Show")

    def __init__(self, *args: object, **kwargs: object) -> None:

        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        kind = self.fields["kind"]
        assert isinstance(kind, forms.ChoiceField)
        kind.choices = [("", "All kinds"), *LedgerEntry.Kind.choices]


class AdjustBalanceForm(forms.Form):
    DIRECTIONS = [
        ("increase", "Increase the balance (the developer was over-charged)"),
        ("decrease", "Decrease the balance (the developer was under-charged)"),
    ]

    direction = forms.ChoiceField(choices=DIRECTIONS, widget=forms.RadioSelect, label="Adjustment")
    amount = forms.CharField(max_length=32, label="Amount", help_text="For example 12.50")
    # A list, checked in clean_currency: posted codes stay case-insensitive, as before.
    currency = forms.CharField(
        max_length=3,
        label="Currency",
        widget=forms.Select,
        error_messages={"required": "Choose a currency."},
    )
    reason = forms.CharField(
        max_length=500,
        label="Reason",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept in the ledger and the audit log.",
    )
    # Set on the confirmation page: a second click or a resubmitted form adjusts once only.
    transaction_id = forms.CharField(max_length=100, required=False, widget=forms.HiddenInput)

    def __init__(self, *args: object, currencies: Sequence[str] = (), **kwargs: object) -> None:
        """`currencies`: those the organisation offers and the developer's wallets'; the
        confirmation page renders the form only as hidden fields and needs none."""
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.currencies = list(currencies)
        field = self.fields["currency"]
        assert isinstance(field.widget, forms.Select)
        # The blank first choice shows after a refused code, instead of silently another one.
        field.widget.choices = [("", "Choose…"), *((code, code) for code in self.currencies)]
        field.initial = "USD" if "USD" in self.currencies else next(iter(self.currencies), None)
        if not self.currencies:
            field.help_text = (
                "No currency to adjust: the organisation offers none (Monetization settings) "
                "and the developer has no balance."
            )

    def clean_currency(self) -> str:
        code = self.cleaned_data["currency"].strip().upper()
        if code not in self.currencies:
            offered = ", ".join(self.currencies) or "none"
            raise forms.ValidationError(
                f"“{code}” cannot be adjusted here: choose a currency the organisation offers "
                f"or one the developer has a balance in ({offered})."
            )
        return code

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why the balance is adjusted.")
        return reason

    def clean(self) -> dict:

        cleaned = super().clean() or {}
        if "amount" in cleaned and "currency" in cleaned:
            try:
                money = money_parse(cleaned["amount"], cleaned["currency"])
            except MoneyError as exc:
                self.add_error("amount", str(exc))
                return cleaned
            if money.nanos <= 0:
                self.add_error("amount", "Enter an amount greater than zero.")
                return cleaned
            cleaned["change"] = -money if cleaned.get("direction") == "decrease" else money
        return cleaned


class AddCreditForm(forms.Form):
    amount = forms.CharField(
        max_length=32,
        label="Amount to be added to your account balance",
        error_messages={"required": "Enter the amount to add."},
    )

    def __init__(self, *args: object, currency: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.currency = currency

    def clean_amount(self) -> object:

        try:
            money = money_parse(
                self.cleaned_data["amount"],
                self.currency,
                max_decimals=currency_decimals(self.currency),
            )
            if money.nanos <= 0:
                raise forms.ValidationError("Enter an amount greater than zero.")
            # The card is charged exactly this amount. Too small an amount is refused with the
            # organisation's minimum (top_up_check), which is at least Stripe's and says more.
            return stripe_amount_check(money, minimum=False)
        except MoneyError as exc:
            raise forms.ValidationError(str(exc)) from exc


def _money_field_clean(text: str, currency: str, label: str) -> int:

    try:
        money = money_parse(text, currency)
        if money.nanos <= 0:
            raise forms.ValidationError(f"{label} must be greater than zero.")
        # Limits are offered as amounts to pay: each must be one Stripe can charge.
        return stripe_amount_check(money).nanos
    except MoneyError as exc:
        raise forms.ValidationError(f"{label}: {exc}") from exc


class TopUpSettingsForm(forms.Form):
    top_up_wait_seconds = forms.IntegerField(
        min_value=0,
        max_value=86_400,
        label="Top-up wait (seconds)",
        help_text="Time between two Add credit payments in one currency; 0 for none.",
    )
    prepaid_grace = forms.CharField(
        max_length=32,
        label="Prepaid grace below zero",
        help_text="How far a prepaid balance may go below zero, in each currency's units.",
    )
    notification_email = forms.EmailField(
        required=False,
        label="Notify about failed crediting",
        help_text=(
            "Empty: the site administrators (ADMINS), else everyone who may view the Add "
            "credit log."
        ),
    )

    def clean_prepaid_grace(self) -> int:

        try:
            # The currency only validates the format; grace applies in every currency.
            grace = money_parse(self.cleaned_data["prepaid_grace"], "USD").nanos
        except MoneyError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if grace < 0:
            raise forms.ValidationError(
                "The grace cannot be negative: it is how far below zero a prepaid balance may go."
            )
        return grace


class TopUpLimitForm(forms.Form):
    currency = forms.CharField(max_length=3, label="Currency")
    minimum = forms.CharField(max_length=32, label="Minimum")
    maximum = forms.CharField(max_length=32, label="Maximum")
    default = forms.CharField(max_length=32, label="Default")

    def clean(self) -> dict:

        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            # Credit is added by card: a currency Stripe cannot charge cannot be offered.
            currency = stripe_currency_check(cleaned["currency"].strip().upper())
        except MoneyError as exc:
            raise forms.ValidationError(str(exc)) from exc
        values = {
            name: _money_field_clean(cleaned[name], currency, name.capitalize())
            for name in ("minimum", "maximum", "default")
        }
        if not values["minimum"] <= values["default"] <= values["maximum"]:
            raise forms.ValidationError(
                f"{currency}: the default must lie between the minimum and the maximum."
            )
        return {**cleaned, "currency": currency, **values}


class BaseTopUpLimitFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        super().clean()
        seen: set[str] = set()
        for form in self.forms:
            currency = (getattr(form, "cleaned_data", None) or {}).get("currency")
            if not currency or form.cleaned_data.get("DELETE"):
                continue
            if currency in seen:
                raise forms.ValidationError(
                    f"{currency} is listed twice: each currency has one set of limits."
                )
            seen.add(currency)


TopUpLimitFormSet = forms.formset_factory(
    TopUpLimitForm, formset=BaseTopUpLimitFormSet, extra=1, can_delete=True, max_num=50
)


class AutoRechargeForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Recharge automatically")
    threshold = forms.CharField(max_length=32, label="When the balance falls below")
    mode = forms.ChoiceField(
        choices=[("FIXED", "Add a fixed amount"), ("TARGET", "Top up to a target balance")],
        widget=forms.RadioSelect,
        label="Then",
    )
    amount = forms.CharField(max_length=32, label="Amount, or target balance")
    monthly_cap = forms.CharField(
        max_length=32, required=False, label="At most per month (optional)"
    )

    def __init__(self, *args: object, currency: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.currency = currency
        self.prefix = f"recharge-{currency}"

    def _money(self, name: str, *, allow_zero: bool = False) -> object:

        text = self.cleaned_data.get(name) or ""
        if not text.strip():
            return None
        try:
            money = money_parse(text, self.currency, max_decimals=currency_decimals(self.currency))
        except MoneyError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if money.nanos < 0 or (money.nanos == 0 and not allow_zero):
            raise forms.ValidationError("Enter an amount greater than zero.")
        return money

    def clean_threshold(self) -> object:
        return self._money("threshold", allow_zero=True)

    def clean_amount(self) -> object:
        return self._money("amount")

    def clean_monthly_cap(self) -> object:
        return self._money("monthly_cap")
