"""Every amount a person types (Add credit, Adjust balance, auto-recharge, the settings page) is
read by one strict parser (issue 13, point 4): "20,50" is refused with what it could mean and
changes nothing, "1,250.75" is taken; each amount box asks phones for the decimal keypad and
shows the currency's symbol before it."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse

from billing.billing_accounts.selectors import organization_settings_get
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import AutoRecharge, LedgerEntry, TopUp, TopUpLimit, TrustTier, Wallet
from tests.conftest import NANOS_PER_UNIT, usd
from tests.fixtures.stripe import add_credit, latest_top_up

pytestmark = pytest.mark.django_db

TWENTY_FIFTY = "“20,50” is not an amount: did you mean 20.50 or 2,050?"
BIG = 1_250_750_000_000  # 1,250.75 in nanos


def text(response: Any) -> str:
    return html.unescape(response.content.decode())


class AmountBoxes(HTMLParser):
    """Each text input of a page with its inputmode and the symbol shown before it, if any."""

    def __init__(self) -> None:
        super().__init__()
        self.boxes: dict[str, dict[str, str | None]] = {}
        self._prefix: str | None = None
        self._in_prefix = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "span" and found.get("class") == "amount-prefix":
            self._in_prefix, self._prefix = True, ""
        elif tag == "input" and found.get("type") == "text":
            name = found.get("name") or ""
            self.boxes[name] = {"inputmode": found.get("inputmode"), "prefix": self._prefix}
            self._prefix = None

    def handle_data(self, data: str) -> None:
        if self._in_prefix:
            self._prefix = (self._prefix or "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._in_prefix = False


def amount_boxes(response: Any) -> dict[str, dict[str, str | None]]:
    parser = AmountBoxes()
    parser.feed(response.content.decode())
    return parser.boxes


def no_tier_caps() -> None:
    """USD up to 2,000 in one top-up, without the trust tiers' lower caps."""
    TopUpLimit.objects.filter(currency="USD").update(maximum=2000 * NANOS_PER_UNIT)
    TrustTier.objects.all().delete()


# --- refused with what it could mean, nothing changed; 1,250.75 taken -----------------------


def test_add_credit_refuses_20_50_and_takes_1_250_75(fake_stripe, prepaid_client):
    no_tier_caps()

    refused = add_credit(prepaid_client, "20,50")

    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert refused.context["form"].errors["amount"] == [TWENTY_FIFTY]
    assert not TopUp.objects.exists() and fake_stripe.received_requests() == []

    taken = add_credit(prepaid_client, "1,250.75")

    assert taken.status_code == HTTPStatus.FOUND
    assert latest_top_up().amount == BIG


def adjust(client: Any, developer: Any, amount: str, **extra: str) -> Any:
    data = {"direction": "increase", "amount": amount, "currency": "USD", "reason": "goodwill"}
    return client.post(reverse("people_balance", args=[developer.pk]), {**data, **extra})


@pytest.mark.parametrize(
    "amount, message",
    [
        ("20,50", TWENTY_FIFTY),
        # Add credit refused it; Adjust took $0.001 (issue 13).
        ("0.001", "USD amounts take at most 2 decimal places."),
        ("1e3", "“1e3” is not an amount: write it out in digits, e.g. 1,000."),
    ],
)
def test_adjust_refuses_what_add_credit_refuses_and_changes_nothing(
    client, portal_admin, prepaid_developer, amount, message
):
    wallet_credit(
        account=prepaid_developer.billing_account,
        money=usd("20"),
        transaction_id="t1",
        actor=Actor.system(),
    )
    client.force_login(portal_admin)

    for extra in ({}, {"confirm": "1", "transaction_id": "adjustment:x"}):
        response = adjust(client, prepaid_developer, amount, **extra)
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert response.context["adjust_form"].errors["amount"] == [message]
        assert message in text(response)

    assert Wallet.objects.get().balance == 20 * NANOS_PER_UNIT
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADJUSTMENT).exists()


def test_adjust_takes_1_250_75(client, portal_admin, prepaid_developer):
    client.force_login(portal_admin)

    asked = adjust(client, prepaid_developer, "1,250.75")
    assert "Increase the USD balance by $1,250.75?" in text(asked)
    adjust(client, prepaid_developer, "1,250.75", confirm="1", transaction_id="adjustment:big")

    assert Wallet.objects.get().balance == BIG


def recharge_form(**amounts: str) -> dict[str, str]:
    """Auto-recharge left off: saving it charges nothing and needs no card."""
    fields = {"threshold": "20", "mode": "FIXED", "amount": "50", "monthly_cap": "", **amounts}
    return {f"recharge-USD-{name}": value for name, value in fields.items()}


@pytest.mark.parametrize("field", ["threshold", "amount", "monthly_cap"])
def test_auto_recharge_refuses_20_50_in_each_amount(prepaid_client, field):
    url = reverse("auto_recharge_settings", args=["USD"])

    response = prepaid_client.post(url, recharge_form(**{field: "20,50"}))

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert TWENTY_FIFTY in text(response)
    assert not AutoRecharge.objects.exists()


def test_auto_recharge_takes_1_250_75(prepaid_client):
    url = reverse("auto_recharge_settings", args=["USD"])

    response = prepaid_client.post(url, recharge_form(monthly_cap="1,250.75"))

    assert response.status_code == HTTPStatus.FOUND
    assert AutoRecharge.objects.get().monthly_cap == BIG


def settings_form(**overrides: str) -> dict[str, str]:
    return {
        "section": "top_ups",
        "top_up_wait_seconds": "300",
        "prepaid_grace": "0",
        "notification_email": "",
        "limits-TOTAL_FORMS": "1",
        "limits-INITIAL_FORMS": "1",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "50",
        "limits-0-currency": "USD",
        "limits-0-minimum": "5",
        "limits-0-maximum": "500",
        "limits-0-default": "10",
        **overrides,
    }


def usd_limits() -> tuple[int, int, int]:
    limit = TopUpLimit.objects.get(currency="USD")
    return limit.minimum, limit.maximum, limit.default


@pytest.mark.parametrize(
    "field, typed, message",
    [
        ("limits-0-maximum", "20,50", f"Maximum: {TWENTY_FIFTY}"),
        ("limits-0-default", "20,50", f"Default: {TWENTY_FIFTY}"),
        ("prepaid_grace", "20,50", TWENTY_FIFTY),
        # The grace is one number for every currency, with two decimals at most.
        ("prepaid_grace", "2.505", "Amounts here take at most 2 decimal places."),
    ],
)
def test_the_settings_page_refuses_20_50_and_changes_nothing(
    client, portal_admin, field, typed, message
):
    client.force_login(portal_admin)

    response = client.post(reverse("monetization_settings"), settings_form(**{field: typed}))

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert message in text(response)
    assert usd_limits() == (5 * NANOS_PER_UNIT, 500 * NANOS_PER_UNIT, 10 * NANOS_PER_UNIT)
    assert organization_settings_get().prepaid_grace_nanos == 0


def test_the_settings_page_takes_1_250_75(client, portal_admin):
    client.force_login(portal_admin)
    form = settings_form(**{"limits-0-maximum": "1,250.75", "prepaid_grace": "1,250.75"})

    response = client.post(reverse("monetization_settings"), form)

    assert response.status_code == HTTPStatus.FOUND
    assert usd_limits()[1] == BIG
    assert organization_settings_get().prepaid_grace_nanos == BIG


# --- the boxes: decimal keypad, symbol before -----------------------------------------------


def test_every_amount_box_has_the_decimal_keypad_and_the_currency_symbol(
    client, prepaid_developer, portal_admin
):
    client.force_login(prepaid_developer)
    add_credit_page = amount_boxes(client.get(reverse("add_credit", args=["USD"])))
    balance_page = amount_boxes(client.get(reverse("my_balance")))
    client.force_login(portal_admin)
    adjust_page = amount_boxes(client.get(reverse("people_balance", args=[prepaid_developer.pk])))
    settings_page = amount_boxes(client.get(reverse("monetization_settings")))

    with_dollar = {"inputmode": "decimal", "prefix": "$"}
    assert add_credit_page == {"amount": with_dollar}
    assert balance_page == {
        "recharge-USD-threshold": with_dollar,
        "recharge-USD-amount": with_dollar,
        "recharge-USD-monthly_cap": with_dollar,
    }
    assert adjust_page == {"amount": with_dollar}  # USD is the one currency to adjust
    bare = {"inputmode": "decimal", "prefix": None}
    assert {name: box for name, box in settings_page.items() if box["inputmode"]} == {
        "prepaid_grace": bare,  # one number for every currency: no symbol
        "limits-0-minimum": with_dollar,
        "limits-0-maximum": with_dollar,
        "limits-0-default": with_dollar,
        # The new row's currency is typed beside it: no symbol until it has one.
        "limits-1-minimum": bare,
        "limits-1-maximum": bare,
        "limits-1-default": bare,
    }


def test_each_box_shows_its_own_currency(client, prepaid_developer):
    TopUpLimit.objects.create(
        currency="EUR", minimum=NANOS_PER_UNIT, maximum=100 * NANOS_PER_UNIT, default=10**10
    )
    TopUpLimit.objects.create(
        currency="JPY", minimum=100 * NANOS_PER_UNIT, maximum=10**13, default=10**12
    )
    client.force_login(prepaid_developer)

    assert amount_boxes(client.get(reverse("add_credit", args=["EUR"])))["amount"]["prefix"] == "€"
    assert amount_boxes(client.get(reverse("add_credit", args=["JPY"])))["amount"]["prefix"] == "¥"
    balance_page = amount_boxes(client.get(reverse("my_balance")))
    assert balance_page["recharge-EUR-threshold"]["prefix"] == "€"
    assert balance_page["recharge-JPY-amount"]["prefix"] == "¥"


def test_with_several_currencies_the_adjust_currency_comes_right_before_the_amount(
    client, portal_admin, prepaid_developer
):
    """The amount shows no symbol then: it would be wrong as soon as another currency is
    chosen. The choice just before it shows each currency's symbol instead."""
    TopUpLimit.objects.create(
        currency="EUR", minimum=NANOS_PER_UNIT, maximum=100 * NANOS_PER_UNIT, default=10**10
    )
    client.force_login(portal_admin)

    response = client.get(reverse("people_balance", args=[prepaid_developer.pk]))

    page = text(response)
    form = page[page.index("<h2>Adjust balance</h2>") :]
    assert form.index('name="direction"') < form.index('name="currency"')
    assert form.index('name="currency"') < form.index('name="amount"') < form.index('"reason"')
    assert '<option value="EUR">EUR (€)</option>' in form
    assert '<option value="USD" selected>USD ($)</option>' in form
    assert amount_boxes(response)["amount"] == {"inputmode": "decimal", "prefix": None}
