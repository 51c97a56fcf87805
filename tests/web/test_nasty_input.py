"""Every form field, URL parameter and path parameter of the portal, driven with the same nasty
input: NUL bytes, huge exponents, 10 KB strings, over-long emails, right-to-left and zero-width
characters, NaN, Infinity, an emoji and nothing at all (issue 14). None may give a server error,
and a form that moves money or changes settings, when it refuses the input, changes nothing.

PostgreSQL refuses NUL bytes in text outright, so this file matters most with TEST_DATABASE_URL.
Each case is named by its field and value, e.g. test_add_credit_amount[nul]. Where a field may
legitimately take a value (a company name with an emoji), its table says so, and the case
checks only that there was no server error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings as django_settings
from django.core.validators import validate_email
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from accounts.models import User
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit, wallet_debit
from billing.models import (
    AuditLogEntry,
    AutoRecharge,
    BillingAccount,
    BillingTypeChange,
    LedgerEntry,
    OrganizationSettings,
    RechargeAttempt,
    StripeEvent,
    TopUp,
    TopUpLimit,
    Wallet,
)
from billing.payments.cards import card_save
from billing.web import add_credit as add_credit_pages
from billing.web import auto_recharge as auto_recharge_pages
from tests.api.conftest import Api, developer_path
from tests.conftest import usd
from tests.factories import PASSWORD
from tests.fakes.stripe_server import sign_payload
from tests.fixtures.stripe import WEBHOOK_SECRET

pytestmark = pytest.mark.django_db


def _email(length: int) -> str:
    """A syntactically valid address of exactly `length` characters (Django's validator takes
    up to 320): a 64-character local part and a domain of labels of at most 63."""
    domain_length = length - 65
    labels = []
    while domain_length > 67:  # leave room for a last label and ".com"
        labels.append("d" * 62)
        domain_length -= 63
    labels.append("e" * (domain_length - 4))
    address = "a" * 64 + "@" + ".".join(labels) + ".com"
    assert len(address) == length
    validate_email(address)
    return address


NASTY = {
    "nul": "\x00",
    "nul-inside": "a\x00b",
    "huge-exponent": "1e999999999",
    "negative-huge-exponent": "-1e999999999",
    "400-nines": "9" * 400,
    "10-kb": "x" * 10240,
    "email-262": _email(262),
    "email-320": _email(320),
    "rtl-override": "\u202e05.1",  # shows as "1.50"
    "zero-width": "1\u200b0",
    "nan": "NaN",
    "infinity": "Infinity",
    "emoji": "\U0001f4b8",
    "empty": "",
}
VALUES = list(NASTY)
# JSON numbers (not strings) for the API's amounts: Python's json reads all of them.
RAW_NUMBERS = {
    "huge-exponent": "1e999999999",
    "negative-huge-exponent": "-1e999999999",
    "400-nines": "9" * 400,
    "nan": "NaN",
    "infinity": "Infinity",
    "negative-infinity": "-Infinity",
    "fraction": "0.5",
}


def in_path(name: str) -> str:
    """A nasty value as a path segment: percent-encoded, so NUL travels as %00."""
    return quote(NASTY[name], safe="")


def never(value: str) -> bool:
    return False


def always(value: str) -> bool:
    return True


def only_empty(value: str) -> bool:
    return value == ""


def free_text(max_length: int, *, required: bool = True) -> Callable[[str], bool]:
    """What a Django CharField takes: no NUL, at most `max_length` after stripping."""

    def accepts(value: str) -> bool:
        text = value.strip()
        return "\x00" not in value and len(text) <= max_length and (bool(text) or not required)

    return accepts


def state() -> dict[str, Any]:
    """Everything a refused form or request must leave as it was."""
    models = [
        LedgerEntry,
        Wallet,
        TopUp,
        AutoRecharge,
        RechargeAttempt,
        BillingAccount,
        BillingTypeChange,
        OrganizationSettings,
        TopUpLimit,
        AuditLogEntry,
    ]
    snapshot: dict[str, Any] = {
        model.__name__: list(model.objects.order_by("pk").values()) for model in models
    }
    snapshot["users"] = list(User.objects.order_by("pk").values_list("pk", "email", "first_name"))
    snapshot["emails"] = list(
        EmailAddress.objects.order_by("pk").values_list("email", "verified", "primary")
    )
    return snapshot


def assert_no_server_error(response: HttpResponse, what: str) -> None:
    assert response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR, (
        f"{what} answered {response.status_code}"
    )


@pytest.fixture
def web() -> Client:
    """500s come back as answers (the traceback is in the captured log), so a failure reads
    "POST /…: 500" with the field and value in the test's name."""
    return Client(raise_request_exception=False)


@pytest.fixture
def run_after_commit(django_capture_on_commit_callbacks: Any) -> Iterator[None]:
    """Work deferred to the commit (webhook deliveries, recharges) runs, so that a change it
    would make shows in the state."""
    with django_capture_on_commit_callbacks(execute=True):
        yield


# --- A developer's pages ---------------------------------------------------------------------


@pytest.fixture
def account(prepaid_account: BillingAccount) -> BillingAccount:
    """A prepaid developer with a saved test card and $100."""
    card_save(
        account=prepaid_account,
        payment_method_id="pm_offline_visa_4242",
        brand="visa",
        last4="4242",
    )
    wallet_credit(
        account=prepaid_account, money=usd("100"), transaction_id="opening", actor=Actor.system()
    )
    prepaid_account.refresh_from_db()
    return prepaid_account


@pytest.fixture
def as_developer(web: Client, account: BillingAccount) -> Client:
    web.force_login(account.user)
    return web


@pytest.fixture
def pending_top_up(as_developer: Client) -> TopUp:
    response = as_developer.post(reverse("add_credit", args=["USD"]), {"amount": "20"})
    assert response.status_code == HTTPStatus.FOUND
    return TopUp.objects.get()


def test_add_credit_base_form_starts_a_top_up(as_developer):
    """The other Add credit cases change one field of this form; it does start a top-up."""
    response = as_developer.post(reverse("add_credit", args=["USD"]), {"amount": "20"})
    assert response.status_code == HTTPStatus.FOUND
    assert TopUp.objects.count() == 1


@pytest.mark.parametrize("value", VALUES)
def test_add_credit_amount(as_developer, value, run_after_commit):
    before = state()
    response = as_developer.post(reverse("add_credit", args=["USD"]), {"amount": NASTY[value]})
    assert_no_server_error(response, "POST add credit")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert state() == before


@pytest.mark.parametrize("value", VALUES)
def test_add_credit_amount_in_query(as_developer, value):
    url = reverse("add_credit", args=["USD"])
    response = as_developer.get(url, {"amount": NASTY[value]})
    assert_no_server_error(response, f"GET {url}?amount=")
    assert response.status_code == HTTPStatus.OK


@pytest.mark.parametrize("value", VALUES)
def test_add_credit_currency_in_path(as_developer, value, run_after_commit):
    url = f"/account/balance/add-credit/{in_path(value)}/"
    before = state()
    for response, what in (
        (as_developer.get(url), f"GET {url}"),
        (as_developer.post(url, {"amount": "20"}), f"POST {url}"),
    ):
        assert_no_server_error(response, what)
        assert response.status_code == HTTPStatus.NOT_FOUND, what
    assert state() == before


@pytest.mark.parametrize("value", VALUES)
def test_top_up_id_in_path(as_developer, pending_top_up, value, run_after_commit):
    before = state()
    for page in ("", "cancel/", "test-payment/"):
        url = f"/account/balance/top-ups/{in_path(value)}/{page}"
        for method in ("get", "post"):
            response = getattr(as_developer, method)(url)
            assert_no_server_error(response, f"{method.upper()} {url}")
            assert response.status_code == HTTPStatus.NOT_FOUND
    assert state() == before


@pytest.mark.parametrize("value", VALUES)
def test_top_up_status_seen(as_developer, pending_top_up, value):
    url = reverse("top_up_status", args=[pending_top_up.public_id])
    response = as_developer.get(url, {"seen": NASTY[value]}, headers={"HX-Request": "true"})
    assert_no_server_error(response, f"GET {url}?seen=")


@pytest.fixture
def offline_deliveries(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The signed events the offline test pages send to the webhook (a moment later, in a
    thread of their own): recorded instead, so that a test sees whether one was sent."""
    sent: list[bytes] = []

    def record(*, payload: bytes, signature: str) -> None:
        sent.append(payload)

    for page in (add_credit_pages, auto_recharge_pages):
        monkeypatch.setattr(page, "offline_event_deliver_later", record)
    return sent


def test_test_pages_base_forms_send_an_event(as_developer, pending_top_up, offline_deliveries):
    as_developer.post(reverse("test_payment", args=[pending_top_up.public_id]), {"outcome": "pay"})
    as_developer.post(reverse("test_card"), {"card": "pm_offline_visa_4242"})
    assert len(offline_deliveries) == 2


@pytest.mark.parametrize("value", VALUES)
def test_test_payment_outcome(as_developer, pending_top_up, value, offline_deliveries):
    url = reverse("test_payment", args=[pending_top_up.public_id])
    before = state()
    response = as_developer.post(url, {"outcome": NASTY[value]})
    assert_no_server_error(response, f"POST {url}")
    assert state() == before
    assert offline_deliveries == []


@pytest.mark.parametrize("value", VALUES)
def test_test_card(as_developer, value, offline_deliveries):
    before = state()
    response = as_developer.post(reverse("test_card"), {"card": NASTY[value]})
    assert_no_server_error(response, "POST test card")
    assert state() == before
    assert offline_deliveries == []


def recharge_form(currency: str = "USD", **changes: str) -> dict[str, str]:
    """Auto-recharge switched on, below the $100 balance: saving charges nothing at once."""
    fields = {
        "enabled": "on",
        "threshold": "10",
        "mode": "FIXED",
        "amount": "20",
        "monthly_cap": "",
    }
    fields.update(changes)
    return {f"recharge-{currency}-{name}": value for name, value in fields.items()}


def test_auto_recharge_base_form_saves(as_developer):
    response = as_developer.post(reverse("auto_recharge_settings", args=["USD"]), recharge_form())
    assert response.status_code == HTTPStatus.FOUND
    assert AutoRecharge.objects.get().enabled


RECHARGE_FIELDS = {
    "enabled": always,  # a check box: any text is "on", none is "off"
    "threshold": never,
    "mode": never,
    "amount": never,
    "monthly_cap": only_empty,  # optional
}


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("field", RECHARGE_FIELDS)
def test_auto_recharge_settings(as_developer, field, value, run_after_commit):
    before = state()
    response = as_developer.post(
        reverse("auto_recharge_settings", args=["USD"]), recharge_form(**{field: NASTY[value]})
    )
    assert_no_server_error(response, f"POST auto-recharge {field}")
    if not RECHARGE_FIELDS[field](NASTY[value]):
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert state() == before


@pytest.mark.parametrize("value", VALUES)
def test_auto_recharge_currency_in_path(as_developer, value, run_after_commit):
    url = f"/account/balance/auto-recharge/{in_path(value)}/"
    before = state()
    response = as_developer.get(url)
    assert_no_server_error(response, f"GET {url}")
    # The form's field names carry the currency, as the page would post them.
    response = as_developer.post(url, recharge_form(NASTY[value].upper()))
    assert_no_server_error(response, f"POST {url}")
    assert state() == before


@pytest.mark.parametrize("value", VALUES)
def test_auto_recharge_confirm_charge(as_developer, account, value, run_after_commit):
    """A threshold above the balance ($90): saving would charge at once, so it asks; a
    confirmation that is not the amount asked about asks again and charges nothing."""
    wallet_debit(account=account, money=usd("10"), transaction_id="usage", actor=Actor.system())
    before = state()
    response = as_developer.post(
        reverse("auto_recharge_settings", args=["USD"]),
        {**recharge_form(threshold="95"), "confirm_charge": NASTY[value]},
    )
    assert_no_server_error(response, "POST auto-recharge confirm_charge")
    assert response.status_code == HTTPStatus.OK
    assert "Saving charges" in response.content.decode()
    assert state() == before


BALANCE_QUERIES = {
    "kind": {},
    "page": {},
    "left": {"card": "saving"},  # the saved-card poll's countdown
    "card": {},
}


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("field", BALANCE_QUERIES)
def test_balance_page_query(as_developer, field, value):
    url = reverse("my_balance")
    query = {**BALANCE_QUERIES[field], field: NASTY[value]}
    for headers in ({}, {"HX-Request": "true", "HX-Target": "history"}):
        response = as_developer.get(url, query, headers=headers)
        assert_no_server_error(response, f"GET {url}?{field}= {headers}")


@pytest.mark.parametrize("value", VALUES)
def test_billing_details(as_developer, account, value, run_after_commit):
    before = state()
    response = as_developer.post(reverse("my_account"), {"legal_company_name": NASTY[value]})
    assert_no_server_error(response, "POST my account")
    if not free_text(200, required=False)(NASTY[value]):
        assert state() == before


# --- Sign-up, sign-in and the account pages of allauth ---------------------------------------


def signup_form(**changes: str) -> dict[str, str]:
    fields = {
        "email": "new.developer@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }
    return {**fields, **changes}


SIGNUP_FIELDS = {
    "email": never,
    "first_name": free_text(150),
    "last_name": free_text(150),
    "password1": never,
    "password2": never,
}


def test_signup_base_form_creates_the_account(web):
    response = web.post(reverse("account_signup"), signup_form())
    assert response.status_code == HTTPStatus.FOUND
    assert User.objects.filter(email="new.developer@example.com").exists()


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("field", SIGNUP_FIELDS)
def test_signup(web, field, value, run_after_commit):
    before = state()
    form = signup_form(**{field: NASTY[value]})
    response = web.post(reverse("account_signup"), form)
    assert_no_server_error(response, f"POST sign-up {field}")
    if not SIGNUP_FIELDS[field](NASTY[value]):
        assert state() == before
    # The same sign-up again (a second person, or a double click).
    web.logout()
    again = web.post(reverse("account_signup"), form)
    assert_no_server_error(again, f"POST sign-up {field}, a second time")


@pytest.mark.parametrize("length", [255, 262, 320])
def test_an_email_longer_than_the_account_can_hold_is_refused_at_sign_up(web, length):
    """Never created under a shortened address (which the next sign-up then ran into)."""
    email = _email(length)
    for attempt in ("first", "second"):
        response = web.post(reverse("account_signup"), signup_form(email=email))
        assert response.status_code == HTTPStatus.OK, attempt
        assert "at most 254 characters" in response.content.decode(), attempt
    assert not User.objects.exists()
    assert not EmailAddress.objects.exists()


@pytest.mark.parametrize(
    ("url_name", "form"),
    [
        ("account_email", {"action_add": ""}),
        ("account_reset_password", {}),
    ],
)
def test_an_email_longer_than_an_account_can_hold_is_refused_elsewhere(
    developer_signed_in, url_name, form
):
    before = state()
    response = developer_signed_in.post(reverse(url_name), {**form, "email": _email(262)})
    assert response.status_code == HTTPStatus.OK
    assert "at most 254 characters; this one has 262" in response.content.decode()
    assert state() == before


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("field", ["login", "password"])
def test_sign_in(web, developer, field, value):
    form = {"login": developer.email, "password": "wrong-password-1", field: NASTY[value]}
    response = web.post(reverse("account_login"), form)
    assert_no_server_error(response, f"POST sign-in {field}")
    assert "_auth_user_id" not in web.session


@pytest.mark.parametrize("value", VALUES)
def test_password_reset(web, developer, value, run_after_commit):
    before = state()
    response = web.post(reverse("account_reset_password"), {"email": NASTY[value]})
    assert_no_server_error(response, "POST password reset")
    assert state() == before


@pytest.mark.parametrize("value", VALUES)
def test_keys_in_allauth_paths(web, developer, value):
    key = in_path(value)
    for url in (
        f"/accounts/confirm-email/{key}/",
        f"/accounts/password/reset/key/{key}-{key}/",
        f"/accounts/password/reset/key/1-{key}/",
        f"/accounts/password/reset/key/{key}-set-password/",
    ):
        for method in ("get", "post"):
            response = getattr(web, method)(url)
            assert_no_server_error(response, f"{method.upper()} {url}")


@pytest.fixture
def developer_signed_in(web: Client, developer: User) -> Client:
    web.force_login(developer)
    return web


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("action", ["action_add", "action_primary", "action_send", "action_remove"])
def test_email_management(developer_signed_in, action, value, run_after_commit):
    before = state()
    response = developer_signed_in.post(
        reverse("account_email"), {"email": NASTY[value], action: ""}
    )
    assert_no_server_error(response, f"POST email {action}")
    assert state() == before


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("field", ["oldpassword", "password1", "password2"])
def test_password_change(developer_signed_in, developer, field, value):
    new = "new-horse-battery-7"
    form = {"oldpassword": PASSWORD, "password1": new, "password2": new, field: NASTY[value]}
    response = developer_signed_in.post(reverse("account_change_password"), form)
    assert_no_server_error(response, f"POST password change {field}")
    developer.refresh_from_db()
    assert developer.check_password(PASSWORD)


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize(
    ("url_name", "field"),
    [("account_reauthenticate", "password"), ("account_confirm_login_code", "code")],
)
def test_other_allauth_forms(developer_signed_in, url_name, field, value):
    response = developer_signed_in.post(reverse(url_name), {field: NASTY[value]})
    assert_no_server_error(response, f"POST {url_name} {field}")


# --- Admin pages ------------------------------------------------------------------------------


@pytest.fixture
def as_admin(web: Client, portal_admin: User) -> Client:
    web.force_login(portal_admin)
    return web


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("field", ["q", "page"])
def test_people_search(as_admin, developer, field, value):
    url = reverse("people_list")
    for headers in ({}, {"HX-Request": "true"}):
        response = as_admin.get(url, {field: NASTY[value]}, headers=headers)
        assert_no_server_error(response, f"GET {url}?{field}= {headers}")
        assert response.status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("Ada\x00", "Left out of the search: control characters (U+0000)."),
        ("\x01Ada\x00", "Left out of the search: control characters (U+0000, U+0001)."),
        ("Ada" + " " * 97 + "x" * 10240, "Left out of the search: all after the first 100"),
    ],
    ids=["nul", "two-controls", "10-kb"],
)
def test_people_search_says_what_it_left_out(as_admin, developer, typed, said):
    developer.first_name = "Ada"
    developer.save(update_fields=["first_name"])
    for headers in ({}, {"HX-Request": "true"}):
        response = as_admin.get(reverse("people_list"), {"q": typed}, headers=headers)
        page = response.content.decode()
        assert response.status_code == HTTPStatus.OK
        assert said in page
        assert "1 developer matching “Ada”" in page


@pytest.mark.parametrize("value", VALUES)
def test_person_id_in_path(as_admin, value, run_after_commit):
    before = state()
    for page in ("account/", "account/billing-type/", "account/balance/"):
        url = f"/people/{in_path(value)}/{page}"
        for method in ("get", "post"):
            response = getattr(as_admin, method)(url)
            assert_no_server_error(response, f"{method.upper()} {url}")
            # 405: the developer's My Account is only looked at.
            assert response.status_code in (HTTPStatus.NOT_FOUND, HTTPStatus.METHOD_NOT_ALLOWED)
    assert state() == before


CHOOSE = {"billing_type": "POSTPAID"}
CONFIRM = {**CHOOSE, "expected_current": "PREPAID", "confirm": "1"}
# The tab's two steps: choosing asks; the confirmation's form saves.
BILLING_TYPE_FIELDS = {
    "billing_type": CHOOSE,
    "confirm billing_type": CONFIRM,
    "confirm expected_current": CONFIRM,
}


def test_billing_type_base_form_changes_it(as_admin, prepaid_account):
    url = reverse("billing_type_tab", args=[prepaid_account.user.pk])
    assert as_admin.post(url, CONFIRM).status_code == HTTPStatus.FOUND
    prepaid_account.refresh_from_db()
    assert prepaid_account.billing_type == "POSTPAID"


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("field", BILLING_TYPE_FIELDS)
def test_billing_type_tab(as_admin, prepaid_account, field, value, run_after_commit):
    url = reverse("billing_type_tab", args=[prepaid_account.user.pk])
    before = state()
    name = field.removeprefix("confirm ")
    response = as_admin.post(url, {**BILLING_TYPE_FIELDS[field], name: NASTY[value]})
    assert_no_server_error(response, f"POST {url} {field}")
    assert state() == before


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("field", ["kind", "page"])
def test_people_balance_query(as_admin, account, field, value):
    url = reverse("people_balance", args=[account.user.pk])
    for headers in ({}, {"HX-Request": "true", "HX-Target": "history"}):
        response = as_admin.get(url, {field: NASTY[value]}, headers=headers)
        assert_no_server_error(response, f"GET {url}?{field}= {headers}")


def adjust_form(**changes: str) -> dict[str, str]:
    fields = {
        "direction": "increase",
        "currency": "USD",
        "amount": "5",
        "reason": "Goodwill",
        "transaction_id": f"adjustment:{uuid.uuid4()}",
    }
    return {**fields, **changes}


def test_adjust_balance_base_form_adjusts(as_admin, account):
    url = reverse("people_balance", args=[account.user.pk])
    response = as_admin.post(url, {**adjust_form(), "confirm": "1"})
    assert response.status_code == HTTPStatus.FOUND
    assert Wallet.objects.get(billing_account=account).balance_money == usd("105")


ADJUST_FIELDS = {
    "direction": never,
    "currency": never,
    "amount": never,
    "reason": free_text(500),
    # Empty: the page's own id is made; else the ledger takes printable ids of at most 100.
    "transaction_id": lambda value: value == "" or (len(value) <= 100 and value.isprintable()),
    "confirm": always,  # its presence confirms
}


# Each field, when the adjustment is asked about and when it is confirmed (with `confirm`).
ADJUST_STEPS = [
    *((field, "ask") for field in ADJUST_FIELDS if field != "confirm"),
    *((field, "confirm") for field in ADJUST_FIELDS),
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize(("field", "step"), ADJUST_STEPS)
def test_adjust_balance(as_admin, account, field, step, value, run_after_commit):
    url = reverse("people_balance", args=[account.user.pk])
    form = adjust_form(**{field: NASTY[value]})
    if step == "confirm":
        form.setdefault("confirm", "1")
    before = state()
    response = as_admin.post(url, form)
    assert_no_server_error(response, f"POST {url} {field} ({step})")
    if step == "ask" or not ADJUST_FIELDS[field](NASTY[value]):
        assert state() == before


def settings_form(which: str, **changes: str) -> dict[str, str]:
    """The Monetization settings page's sections, each changing something when saved."""
    forms = {
        "billing_type": {"default_billing_type": "PREPAID", "confirm": "1"},
        "top_ups": {
            "top_up_wait_seconds": "120",
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
            "limits-0-DELETE": "",
        },
        "support": {"support_email": "help@example.com"},
    }
    return {"section": which, **forms[which], **changes}


SETTINGS_FIELDS = {
    # field: (section, what it accepts)
    "section": ("top_ups", never),
    "default_billing_type": ("billing_type", never),
    "confirm": ("billing_type", always),  # its presence confirms
    "top_up_wait_seconds": ("top_ups", never),
    "prepaid_grace": ("top_ups", never),
    "notification_email": ("top_ups", only_empty),
    "limits-TOTAL_FORMS": ("top_ups", never),
    # Any whole number: the forms posted are what is read.
    "limits-INITIAL_FORMS": ("top_ups", lambda value: value.isdigit()),
    "limits-0-currency": ("top_ups", never),
    "limits-0-minimum": ("top_ups", never),
    "limits-0-maximum": ("top_ups", never),
    "limits-0-default": ("top_ups", never),
    # A check box: any text asks to remove USD, which asks for a confirmation first.
    "limits-0-DELETE": ("top_ups", only_empty),
    "support_email": ("support", only_empty),
}


@pytest.mark.parametrize("section", ["billing_type", "top_ups", "support"])
def test_settings_base_forms_save(as_admin, section):
    before = state()
    response = as_admin.post(reverse("monetization_settings"), settings_form(section))
    assert response.status_code == HTTPStatus.FOUND
    assert state() != before


@pytest.mark.parametrize("field", ["support_email", "notification_email"])
def test_settings_email_longer_than_its_column_is_refused(as_admin, field):
    section = SETTINGS_FIELDS[field][0]
    before = state()
    response = as_admin.post(
        reverse("monetization_settings"), settings_form(section, **{field: _email(262)})
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "at most 254 characters (it has 262)" in response.content.decode()
    assert state() == before


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("field", SETTINGS_FIELDS)
def test_monetization_settings(as_admin, field, value, run_after_commit):
    section, accepts = SETTINGS_FIELDS[field]
    before = state()
    response = as_admin.post(
        reverse("monetization_settings"), settings_form(section, **{field: NASTY[value]})
    )
    assert_no_server_error(response, f"POST settings {field}")
    if not accepts(NASTY[value]):
        assert state() == before


# --- The Stripe webhook -----------------------------------------------------------------------


def event(part: str = "", text: str = "") -> dict[str, Any]:
    """A signed event for a payment the portal does not know, with `text` as its `part`."""
    payment = {"id": "pi_nowhere", "object": "payment_intent", "description": "Usage"}
    stripe_event = {
        "id": "evt_nasty",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": payment},
    }
    if part == "event id":
        stripe_event["id"] = text
    elif part == "event type":
        stripe_event["type"] = text
    elif part == "event object":
        payment["description"] = text
    return stripe_event


WEBHOOK_PARTS = ["body", "signature", "signed body", "event id", "event type", "event object"]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("part", WEBHOOK_PARTS)
def test_stripe_webhook(web, settings, part, value, run_after_commit):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    text = NASTY[value]
    if part == "body":
        body, signature = text.encode(), sign_payload(b"{}", WEBHOOK_SECRET)
    elif part == "signature":
        body, signature = json.dumps(event()).encode(), text
    elif part == "signed body":
        body = text.encode()
        signature = sign_payload(body, WEBHOOK_SECRET)
    else:
        body = json.dumps(event(part, text)).encode()
        signature = sign_payload(body, WEBHOOK_SECRET)
    before = state()
    events = StripeEvent.objects.count()
    response = web.generic(
        "POST",
        reverse("stripe_webhook"),
        body,
        content_type="application/json",
        headers={"Stripe-Signature": signature},
    )
    assert_no_server_error(response, f"POST webhook {part}")
    assert state() == before
    if part in ("body", "signature", "signed body"):
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert StripeEvent.objects.count() == events
    if part == "event object":  # Stripe's to say: the event is kept, whatever it holds
        assert StripeEvent.objects.filter(id="evt_nasty").exists()


# --- The REST API -----------------------------------------------------------------------------


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def token(api: Api, portal_admin: User) -> str:
    """A token of a portal admin, who holds every permission the API asks for."""
    return api.token_for(portal_admin)


def money(**changes: Any) -> dict[str, Any]:
    return {"currencyCode": "USD", "units": "5", "nanos": 0, **changes}


def api_bodies() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Each operation that takes a body: (method, path suffix, a body it accepts)."""
    return {
        "credit": ("POST", "balance:credit", {"transactionAmount": money(), "transactionId": "c1"}),
        "debit": ("POST", "balance:debit", {"transactionAmount": money(), "transactionId": "d1"}),
        "adjust": ("POST", "balance:adjust", {"adjustment": money(), "transactionId": "a1"}),
        "billing type": ("PUT", "monetizationConfig", {"billingType": "POSTPAID"}),
    }


OPERATIONS = [
    ("GET", "balance", None),
    ("GET", "monetizationConfig", None),
    *api_bodies().values(),
]


def test_api_base_bodies_change_the_balance(api, token, account):
    for method, suffix, body in api_bodies().values():
        response = api.call(method, developer_path(account.user.email, suffix), body, token=token)
        assert response.status_code == HTTPStatus.OK, (suffix, response.content)
    # $100, +5 credited, -5 debited, and a positive adjustment of 5 decreases the balance.
    assert Wallet.objects.get(billing_account=account).balance_money == usd("95")


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("part", ["org", "email"])
def test_api_path(api, token, account, part, value):
    before = state()
    for method, suffix, body in OPERATIONS:
        org, email = django_settings.PORTAL_ORG, account.user.email
        if part == "org":
            org = in_path(value)
        else:
            email = in_path(value)
        path = f"/v1/organizations/{org}/developers/{email}/{suffix}"
        response = api.call(method, path, body, token=token)
        assert_no_server_error(response, f"{method} {path}")
        assert response["Content-Type"].startswith("application/json")
    assert state() == before


API_FIELDS = {
    # operation, field path in the body, what it accepts
    "credit transactionAmount.currencyCode": never,
    "credit transactionAmount.units": never,
    "credit transactionAmount.nanos": never,
    # Reserved prefixes and unprintable ids are refused; other text is the caller's id.
    "credit transactionId": lambda value: 0 < len(value) <= 255 and value.isprintable(),
    "debit transactionAmount.units": never,
    "debit transactionId": lambda value: 0 < len(value) <= 255 and value.isprintable(),
    "adjust adjustment.currencyCode": never,
    "adjust adjustment.units": never,
    "adjust adjustment.nanos": never,
    "adjust transactionId": lambda value: 0 < len(value) <= 255 and value.isprintable(),
    "billing type billingType": never,
}


def _body_with(operation: str, field: str, value: Any) -> tuple[str, str, dict[str, Any]]:
    method, suffix, body = api_bodies()[operation]
    body = json.loads(json.dumps(body))
    *parents, name = field.split(".")
    target = body
    for parent in parents:
        target = target[parent]
    target[name] = value
    return method, suffix, body


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("where", API_FIELDS)
def test_api_json_field(api, token, account, where, value, run_after_commit):
    operation, field = where.rsplit(" ", 1)
    method, suffix, body = _body_with(operation, field, NASTY[value])
    before = state()
    path = developer_path(account.user.email, suffix)
    response = api.call(method, path, body, token=token)
    assert_no_server_error(response, f"{method} {path} {field}")
    if not API_FIELDS[where](NASTY[value]):
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert state() == before


@pytest.mark.parametrize("number", RAW_NUMBERS)
@pytest.mark.parametrize(
    "where",
    ["credit transactionAmount.units", "credit transactionAmount.nanos", "adjust adjustment.units"],
)
def test_api_json_numbers(api, token, account, where, number, run_after_commit):
    """Numbers as JSON numbers, not strings: 1e999999999 reads as infinity, 400 nines as an
    integer of 400 digits."""
    operation, field = where.rsplit(" ", 1)
    marker = "__NUMBER__"
    method, suffix, body = _body_with(operation, field, marker)
    raw = json.dumps(body).replace(f'"{marker}"', RAW_NUMBERS[number])
    before = state()
    path = developer_path(account.user.email, suffix)
    response = api.call(method, path, raw=raw, token=token)
    assert_no_server_error(response, f"{method} {path} {field}={RAW_NUMBERS[number][:20]}")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert state() == before


@pytest.mark.parametrize("value", VALUES)
def test_api_bearer_token(api, token, account, value):
    path = developer_path(account.user.email, "balance")
    response = api.call("GET", path, authorization=f"Bearer {NASTY[value]}")
    assert_no_server_error(response, f"GET {path} with a nasty token")
    assert response.status_code == HTTPStatus.UNAUTHORIZED
