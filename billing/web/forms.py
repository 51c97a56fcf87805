"""The forms of billing's pages: they parse what a person typed; the services decide."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.utils.html import format_html
from django.utils.safestring import SafeString

from billing.models import BillingType, LedgerEntry, OrganizationSettings
from billing.money import (
    MoneyError,
    MoneyPrecisionError,
    amount_from_input,
    currency_symbol,
    currency_validate,
    money_from_input,
    stripe_amount_check,
    stripe_currency_check,
)
from billing.notifications.alerts import alert_percents

# The prepaid grace is one number for every currency: two decimals, as most currencies have.
# (Whole units would be stricter, but refuse the 2.50 the settings page has always taken.)
GRACE_DECIMALS = 2


class AmountInput(forms.TextInput):
    """A box for an amount a person types: the phone's decimal keypad (type=number would refuse
    "1,250.75" in some browsers and round in others), and the currency's symbol before it, as
    the amount will be shown. The symbol is aria-hidden: the label or the heading names the
    currency, and the input keeps its label and aria-describedby as Django sets them."""

    def __init__(self, attrs: dict[str, Any] | None = None, currency: str | None = None) -> None:
        super().__init__(attrs={"inputmode": "decimal", **(attrs or {})})
        self.currency = currency

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        box = super().render(name, value, attrs, renderer)
        if not self.currency:
            return box
        return format_html(
            '<span class="amount-field" data-currency="{}"><span class="amount-prefix" '
            'aria-hidden="true">{}</span>{}</span>',
            self.currency,
            currency_symbol(self.currency),
            box,
        )


class AmountField(forms.CharField):
    """The text of an amount; the form reads it with money_from_input, in its currency."""

    widget = AmountInput

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=32, **kwargs)


def _amounts_in(form: forms.Form, currency: str | None) -> None:
    """Show `currency`'s symbol before each amount box of `form` (none if it is unknown)."""
    try:
        known = currency_validate(currency) if currency else None
    except MoneyError:
        known = None
    for field in form.fields.values():
        if isinstance(field.widget, AmountInput):
            field.widget.currency = known


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


# As long as the settings' email columns hold (Django's validator takes up to 320 characters).
_SETTINGS_EMAIL_MAX_LENGTH = OrganizationSettings._meta.get_field("support_email").max_length


class SupportForm(forms.Form):
    support_email = forms.EmailField(
        required=False,
        max_length=_SETTINGS_EMAIL_MAX_LENGTH,
        label="Support email",
        help_text="Where developers write for help: the portal's “contact us” texts name it.",
    )


class StatementSettingsForm(forms.Form):
    balance_alert_percents = forms.CharField(
        max_length=50,
        label="Low-balance alerts at",
        help_text=(
            "Percentages of a prepaid balance right after its last top-up, separated by "
            "commas: each is emailed once, until the next top-up."
        ),
    )
    billing_history_months = forms.IntegerField(
        min_value=1,
        max_value=120,
        label="Billing history limit (months)",
        help_text="How many months of statements developers can download.",
    )
    credit_lifetime_days = forms.IntegerField(
        min_value=0,
        max_value=3650,
        label="Credit lifetime (days)",
        help_text=(
            "Credit expires this many days after it was added (0: never); what is left is "
            "then removed from the balance. A change applies to credit added from now on."
        ),
    )

    def clean_balance_alert_percents(self) -> str:
        try:
            percents = alert_percents(self.cleaned_data["balance_alert_percents"].replace("%", ""))
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        return ",".join(str(p) for p in percents)


# Terms are prose: long enough for real terms, short of filling the settings row with junk.
PURCHASE_TERMS_MAX_LENGTH = 20_000


class PurchaseTermsForm(forms.Form):
    purchase_terms = forms.CharField(
        required=False,
        max_length=PURCHASE_TERMS_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 8}),
        label="Terms and conditions for purchases",
        help_text=(
            "Shown when a developer buys a plan, with a box they must tick to accept them. "
            "Empty: no terms to accept."
        ),
    )

    def clean_purchase_terms(self) -> str:
        # Browsers send a textarea's line breaks as CRLF: keep one kind, so saving the same
        # text again changes nothing.
        terms: str = self.cleaned_data["purchase_terms"]
        return terms.replace("\r\n", "\n").replace("\r", "\n")


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
    # Right before the amount, with each currency's symbol: the amount box shows a symbol only
    # when there is one currency to choose (a symbol for the currency chosen now would be wrong
    # as soon as the admin picked another, without a script).
    # A list, checked in clean_currency: posted codes stay case-insensitive, as before.
    currency = forms.CharField(
        max_length=3,
        label="Currency",
        widget=forms.Select,
        error_messages={"required": "Choose a currency."},
    )
    amount = AmountField(label="Amount", help_text="For example 12.50")
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
        field.widget.choices = [("", "Choose…"), *((c, _with_symbol(c)) for c in self.currencies)]
        field.initial = "USD" if "USD" in self.currencies else next(iter(self.currencies), None)
        if not self.currencies:
            field.help_text = (
                "No currency to adjust: the organisation offers none (Monetization settings) "
                "and the developer has no balance."
            )
        _amounts_in(self, self.currencies[0] if len(self.currencies) == 1 else None)

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
                money = money_from_input(cleaned["amount"], cleaned["currency"])
            except MoneyError as exc:
                self.add_error("amount", str(exc))
                return cleaned
            if money.nanos <= 0:
                self.add_error("amount", "Enter an amount greater than zero.")
                return cleaned
            cleaned["change"] = -money if cleaned.get("direction") == "decrease" else money
        return cleaned


class AddCreditForm(forms.Form):
    amount = AmountField(
        label="Amount to be added to your account balance",
        error_messages={"required": "Enter the amount to add."},
    )

    def __init__(self, *args: object, currency: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.currency = currency
        _amounts_in(self, currency)

    def clean_amount(self) -> object:

        try:
            money = money_from_input(self.cleaned_data["amount"], self.currency)
            if money.nanos <= 0:
                raise forms.ValidationError("Enter an amount greater than zero.")
            # The card is charged exactly this amount. Too small an amount is refused with the
            # organisation's minimum (top_up_check), which is at least Stripe's and says more.
            return stripe_amount_check(money, minimum=False)
        except MoneyError as exc:
            raise forms.ValidationError(str(exc)) from exc


def _money_field_clean(text: str, currency: str, label: str) -> int:

    try:
        try:
            money = money_from_input(text, currency)
        except MoneyPrecisionError as exc:
            # A limit is an amount to pay: Stripe's step, with the amount as typed, says more.
            if exc.understood is not None:
                stripe_amount_check(exc.understood, minimum=False)
            raise
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
    prepaid_grace = AmountField(
        label="Prepaid grace below zero",
        help_text=(
            "How far a prepaid balance may go below zero: one number for every currency, in "
            f"its units, with at most {GRACE_DECIMALS} decimals (e.g. 5 or 2.50)."
        ),
    )
    notification_email = forms.EmailField(
        required=False,
        max_length=_SETTINGS_EMAIL_MAX_LENGTH,
        label="Notify about failed crediting",
        help_text=(
            "Empty: the site administrators (ADMINS), else everyone who may view the Add "
            "credit log."
        ),
    )

    def clean_prepaid_grace(self) -> int:

        try:
            grace = amount_from_input(self.cleaned_data["prepaid_grace"], decimals=GRACE_DECIMALS)
        except MoneyError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if grace < 0:
            raise forms.ValidationError(
                "The grace cannot be negative: it is how far below zero a prepaid balance may go."
            )
        return grace


class TopUpLimitForm(forms.Form):
    currency = forms.CharField(max_length=3, label="Currency")
    minimum = AmountField(label="Minimum")
    maximum = AmountField(label="Maximum")
    default = AmountField(label="Default")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The row's currency as posted or saved; a new row shows no symbol until it has one.
        if self.is_bound:
            currency = self.data.get(self.add_prefix("currency"))
        else:
            currency = self.initial.get("currency")
        _amounts_in(self, str(currency or "").strip().upper())

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
    threshold = AmountField(label="When the balance falls below")
    mode = forms.ChoiceField(
        choices=[("FIXED", "Add a fixed amount"), ("TARGET", "Top up to a target balance")],
        widget=forms.RadioSelect,
        label="Then",
    )
    amount = AmountField(label="Amount, or target balance")
    monthly_cap = AmountField(required=False, label="At most per month (optional)")

    def __init__(self, *args: object, currency: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.currency = currency
        self.prefix = f"recharge-{currency}"
        _amounts_in(self, currency)

    def _money(self, name: str, *, allow_zero: bool = False) -> object:

        text = self.cleaned_data.get(name) or ""
        if not text.strip():
            return None
        try:
            money = money_from_input(text, self.currency)
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


def _with_symbol(currency: str) -> str:
    """A currency as a choice: "USD ($)", "EUR (€)"; "KWD" where the symbol is the code."""
    symbol = currency_symbol(currency)
    return currency if symbol == currency else f"{currency} ({symbol})"
