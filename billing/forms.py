from __future__ import annotations

from django import forms

from billing.models import BillingType


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
