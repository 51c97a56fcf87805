"""The Apigee-compatible API under /v1/, driven the way a gateway or back-office script would:
seed 004's examples replayed request by request, then debits, malformed input, tokens,
permissions and the `create_api_token` command. Every error case also proves nothing changed."""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from http import HTTPStatus
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import ApiToken, User
from accounts.services import TOKEN_PREFIX, api_token_create, api_token_revoke
from billing.api import developers as billing_api
from billing.billing_accounts.selectors import organization_settings_get
from billing.billing_accounts.services import billing_account_get_or_create
from billing.billing_type.services import billing_type_set, organization_default_billing_type_set
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit, wallet_debit
from billing.models import AuditLogEntry, BillingType, BillingTypeChange, LedgerEntry, Wallet
from billing.money import money_parse
from tests.api.conftest import Api, billing_state, developer_path, error_of
from tests.factories import AdminFactory, DeveloperFactory

pytestmark = pytest.mark.django_db

SEED_TRANSACTION_ID = "ab31b63e-f8e8-11eb-9a03-0242ac130003"

# Seed 004's response bodies, copied as printed (its lastCreditTime values are placeholders).
SEED_GET_BALANCE = {
    "wallets": [
        {
            "balance": {"currencyCode": "USD", "units": "150", "nanos": 500000000},
            "lastCreditTime": 1234567890,
        },
        {
            "balance": {"currencyCode": "INR", "units": "10000", "nanos": 600000000},
            "lastCreditTime": 9876543210,
        },
    ]
}
SEED_CREDIT_REQUEST = {
    "transactionAmount": {"currencyCode": "USD", "units": "150", "nanos": 210000000},
    "transactionId": SEED_TRANSACTION_ID,
}
SEED_CREDIT_RESPONSE = {
    "wallets": [
        {
            "balance": {"currencyCode": "USD", "units": "300", "nanos": 710000000},
            "lastCreditTime": "9876543210",
        },
        {
            "balance": {"currencyCode": "INR", "units": "10000", "nanos": 600000000},
            "lastCreditTime": "1234567890",
        },
    ]
}
SEED_ADJUST_DECREASE = {"adjustment": {"units": "50", "currencyCode": "USD"}}
SEED_ADJUST_DECREASE_RESPONSE = {
    "wallets": [
        {"balance": {"currencyCode": "USD", "units": "150"}, "lastCreditTime": "1635489199530"}
    ]
}
SEED_ADJUST_INCREASE = {"adjustment": {"units": "-50", "nanos": "100000000", "currencyCode": "USD"}}
SEED_ADJUST_INCREASE_RESPONSE = {
    "wallets": [
        {
            "balance": {"currencyCode": "USD", "units": "200", "nanos": 100000000},
            "lastCreditTime": "1635489199530",
        }
    ]
}


# ---- helpers ----


def now_ms() -> int:
    return int(time.time() * 1000)


def without_times(body: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The body with every wallet's lastCreditTime taken out, and those values in order."""
    body = copy.deepcopy(body)
    times = [wallet.pop("lastCreditTime", None) for wallet in body["wallets"]]
    return body, times


def assert_recent_epoch_ms(value: Any, *, not_before: int, not_after: int) -> None:
    """lastCreditTime: epoch milliseconds as a string of digits, taken while the request ran."""
    assert isinstance(value, str) and value.isascii() and value.isdigit(), value
    assert not_before - 1000 <= int(value) <= not_after + 1000


def money(currency: str, units: str, nanos: int | None = None) -> dict[str, Any]:
    amount: dict[str, Any] = {"currencyCode": currency, "units": units}
    if nanos is not None:
        amount["nanos"] = nanos
    return amount


def credit_body(currency: str, units: str, nanos: int | None = None, *, tx: str) -> dict:
    return {"transactionAmount": money(currency, units, nanos), "transactionId": tx}


def make_prepaid(user: User) -> None:
    billing_type_set(
        account=user.billing_account,
        billing_type=BillingType.PREPAID,
        changed_by=None,
        source=BillingTypeChange.Source.API,
    )


@pytest.fixture
def admin_token(api: Api, portal_admin: User) -> str:
    return api.token_for(portal_admin)


@pytest.fixture
def owner_token(api: Api, developer: User) -> str:
    return api.token_for(developer)


class Calls:
    """The six operations on one developer's billing, sent with one token."""

    def __init__(self, api: Api, token: str, email: str) -> None:
        self.api, self.token, self.email = api, token, email

    def get_config(self) -> Any:
        return self.api.call(
            "GET", developer_path(self.email, "monetizationConfig"), token=self.token
        )

    def put_config(self, body: Any) -> Any:
        path = developer_path(self.email, "monetizationConfig")
        return self.api.call("PUT", path, body, token=self.token)

    def balance(self) -> Any:
        return self.api.call("GET", developer_path(self.email, "balance"), token=self.token)

    def credit(self, body: Any) -> Any:
        path = developer_path(self.email, "balance:credit")
        return self.api.call("POST", path, body, token=self.token)

    def debit(self, body: Any) -> Any:
        return self.api.call(
            "POST", developer_path(self.email, "balance:debit"), body, token=self.token
        )

    def adjust(self, body: Any) -> Any:
        path = developer_path(self.email, "balance:adjust")
        return self.api.call("POST", path, body, token=self.token)


@pytest.fixture
def calls(api: Api, admin_token: str, developer: User) -> Calls:
    return Calls(api, admin_token, developer.email)


# ---- monetizationConfig ----


def test_put_monetization_config_sets_prepaid_then_postpaid(calls, developer, portal_admin):
    response = calls.put_config({"billingType": "PREPAID"})
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"billingType": "PREPAID"}
    assert calls.get_config().json() == {"billingType": "PREPAID"}

    response = calls.put_config({"billingType": "POSTPAID"})
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"billingType": "POSTPAID"}
    assert calls.get_config().json() == {"billingType": "POSTPAID"}

    developer.billing_account.refresh_from_db()
    assert developer.billing_account.billing_type == BillingType.POSTPAID
    history = BillingTypeChange.objects.filter(billing_account=developer.billing_account)
    assert list(
        history.order_by("pk").values_list(
            "old_billing_type", "new_billing_type", "source", "changed_by"
        )
    ) == [
        ("POSTPAID", "PREPAID", "API", portal_admin.pk),
        ("PREPAID", "POSTPAID", "API", portal_admin.pk),
    ]


def test_monetization_config_of_a_developer_without_a_type_follows_the_default(calls):
    assert calls.get_config().json() == {"billingType": "POSTPAID"}
    organization_default_billing_type_set(billing_type=BillingType.PREPAID, changed_by=None)
    assert calls.get_config().json() == {"billingType": "PREPAID"}


@pytest.mark.parametrize("body", [{}, {"billingType": 1}], ids=["missing", "not a string"])
def test_a_bad_monetization_config_names_the_field_as_sent(calls, developer, body):
    response = calls.put_config(body)

    # The field as the request spells it, not the handler's parameter ("config.billingType").
    assert error_of(response, HTTPStatus.BAD_REQUEST)["message"].startswith("billingType: ")
    developer.billing_account.refresh_from_db()
    assert developer.billing_account.billing_type == ""


# ---- balance, credit, adjust: seed 004's examples ----


def _seed_wallets(calls: Calls) -> list[str]:
    """USD 150.5 then INR 10000.6, credited through the API; returns their lastCreditTimes."""
    before = now_ms()
    usd = calls.credit(credit_body("USD", "150", 500000000, tx="top-up-usd"))
    inr = calls.credit(credit_body("INR", "10000", 600000000, tx="top-up-inr"))
    assert (usd.status_code, inr.status_code) == (HTTPStatus.OK, HTTPStatus.OK)
    _, times = without_times(calls.balance().json())
    for value in times:
        assert_recent_epoch_ms(value, not_before=before, not_after=now_ms())
    return times


def test_get_balance_matches_the_seed_example(api, calls, developer, owner_token):
    before = now_ms()
    _seed_wallets(calls)
    after = now_ms()

    # The developer reads their own balance with their own token.
    response = api.call("GET", developer_path(developer.email, "balance"), token=owner_token)

    assert response.status_code == HTTPStatus.OK
    body, times = without_times(response.json())
    expected, _ = without_times(SEED_GET_BALANCE)
    assert body == expected
    for value in times:
        assert_recent_epoch_ms(value, not_before=before, not_after=after)


def test_credit_matches_the_seed_example(calls, developer, portal_admin):
    usd_time, inr_time = _seed_wallets(calls)

    before = now_ms()
    response = calls.credit(SEED_CREDIT_REQUEST)
    after = now_ms()

    assert response.status_code == HTTPStatus.OK
    assert "Idempotent-Replayed" not in response.headers
    body, (new_usd_time, new_inr_time) = without_times(response.json())
    expected, _ = without_times(SEED_CREDIT_RESPONSE)
    assert body == expected
    assert_recent_epoch_ms(new_usd_time, not_before=before, not_after=after)
    assert int(new_usd_time) >= int(usd_time)
    assert new_inr_time == inr_time  # only the credited wallet's time moves
    assert calls.balance().json() == response.json()

    entry = LedgerEntry.objects.get(transaction_id=SEED_TRANSACTION_ID)
    assert (entry.kind, entry.amount, entry.balance_after) == (
        "TOP_UP",
        150_210_000_000,
        300_710_000_000,
    )
    assert entry.actor_user == portal_admin and entry.actor_token is not None


def test_replayed_credit_returns_the_first_answer_and_credits_once(calls):
    _seed_wallets(calls)
    first = calls.credit(SEED_CREDIT_REQUEST)
    entries = LedgerEntry.objects.count()

    again = calls.credit(SEED_CREDIT_REQUEST)

    assert again.status_code == HTTPStatus.OK
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert LedgerEntry.objects.count() == entries
    assert Wallet.objects.get(currency="USD").balance == 300_710_000_000


def test_replay_after_a_later_credit_still_returns_the_first_answer(calls):
    first = calls.credit(credit_body("USD", "10", tx="credit-1"))
    time.sleep(0.01)  # the second credit lands at a later millisecond
    assert calls.credit(credit_body("USD", "5", tx="credit-2")).status_code == HTTPStatus.OK

    again = calls.credit(credit_body("USD", "10", tx="credit-1"))

    assert again.status_code == HTTPStatus.OK
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


@pytest.mark.parametrize("operation", ["credit", "adjust"])
def test_a_change_answers_as_its_replay_does_when_a_debit_lands_in_between(
    calls, developer, monkeypatch, operation
):
    """Invariant 3, a replay returns the first result: the first answer read the wallets after
    the change had committed, so a gateway's debit landing in between was in it, and every
    replay (as of the change) said otherwise."""
    read_wallets = billing_api.wallets_balance

    def debit_lands_first(**kwargs: Any) -> Any:
        monkeypatch.setattr(billing_api, "wallets_balance", read_wallets)  # once
        wallet_debit(
            account=developer.billing_account,
            money=money_parse("3", "USD"),
            transaction_id="usage-in-between",
            actor=Actor.system(),
        )
        return read_wallets(**kwargs)

    monkeypatch.setattr(billing_api, "wallets_balance", debit_lands_first)
    body = (
        credit_body("USD", "10", tx="change-1")
        if operation == "credit"
        else {"adjustment": money("USD", "-10"), "transactionId": "change-1"}
    )

    first = getattr(calls, operation)(body)
    again = getattr(calls, operation)(body)

    assert first.status_code == again.status_code == HTTPStatus.OK
    assert first.json()["wallets"][0]["balance"] == {"currencyCode": "USD", "units": "10"}
    assert again.json() == first.json()
    assert calls.balance().json()["wallets"][0]["balance"] == {"currencyCode": "USD", "units": "7"}


def test_a_change_answers_with_the_empty_wallets_the_balance_lists(calls, developer):
    """A wallet opened but never credited (e.g. by auto-recharge settings in EUR) is listed by
    GET balance at zero: the answer to a credit, and its replay, listed it too before answers
    were taken as of the change."""

    Wallet.objects.create(billing_account=developer.billing_account, currency="EUR")

    first = calls.credit(credit_body("USD", "10", tx="change-1"))
    again = calls.credit(credit_body("USD", "10", tx="change-1"))

    currencies = [w["balance"]["currencyCode"] for w in first.json()["wallets"]]
    listed = [w["balance"]["currencyCode"] for w in calls.balance().json()["wallets"]]
    assert currencies == listed == ["EUR", "USD"]
    assert first.json()["wallets"][0]["balance"] == {"currencyCode": "EUR", "units": "0"}
    assert again.json() == first.json()


def test_adjust_examples_from_the_seed(calls, developer, portal_admin):
    credited = calls.credit(credit_body("USD", "200", tx="top-up-200"))
    (credit_time,) = without_times(credited.json())[1]

    decreased = calls.adjust(SEED_ADJUST_DECREASE)

    assert decreased.status_code == HTTPStatus.OK
    assert without_times(decreased.json())[0] == without_times(SEED_ADJUST_DECREASE_RESPONSE)[0]
    assert "nanos" not in decreased.json()["wallets"][0]["balance"]
    # An adjustment is not a credit: lastCreditTime stays, as in the seed's two responses.
    assert without_times(decreased.json())[1] == [credit_time]

    increased = calls.adjust(SEED_ADJUST_INCREASE)

    assert increased.status_code == HTTPStatus.OK
    assert without_times(increased.json())[0] == without_times(SEED_ADJUST_INCREASE_RESPONSE)[0]
    assert without_times(increased.json())[1] == [credit_time]
    assert calls.balance().json() == increased.json()

    adjustments = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADJUSTMENT).order_by("pk")
    assert [(e.amount, e.balance_after) for e in adjustments] == [
        (-50_000_000_000, 150_000_000_000),
        (50_100_000_000, 200_100_000_000),
    ]
    audit = AuditLogEntry.objects.filter(action="balance.adjust").order_by("pk")
    assert [(a.actor, a.target_user, a.data["change_nanos"]) for a in audit] == [
        (portal_admin, developer, -50_000_000_000),
        (portal_admin, developer, 50_100_000_000),
    ]


def test_replayed_adjustment_with_a_transaction_id_applies_once(calls):
    calls.credit(credit_body("USD", "20", tx="top-up-20"))
    body = {"adjustment": money("USD", "5"), "transactionId": "adjust-1"}
    first = calls.adjust(body)

    again = calls.adjust(body)

    assert again.status_code == HTTPStatus.OK
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Wallet.objects.get().balance == 15_000_000_000
    assert AuditLogEntry.objects.filter(action="balance.adjust").count() == 1


def test_an_adjustment_may_not_take_a_prepaid_balance_below_the_grace(calls, developer):
    make_prepaid(developer)
    calls.credit(credit_body("USD", "20", tx="top-up-20"))

    refused = calls.adjust({"adjustment": money("USD", "20", 10_000_000)})

    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert refused.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert "at most $20.00" in refused.json()["error"]["message"]
    assert Wallet.objects.get().balance == 20_000_000_000
    assert not AuditLogEntry.objects.filter(action="balance.adjust").exists()
    assert calls.adjust({"adjustment": money("USD", "20")}).status_code == HTTPStatus.OK


def test_an_adjustment_past_the_largest_balance_is_refused(calls, developer):
    make_prepaid(developer)
    calls.credit(credit_body("USD", "999999999", tx="almost-full"))
    before = billing_state()

    refused = calls.adjust({"adjustment": money("USD", "-2")})  # negative: an increase

    assert refused.status_code == HTTPStatus.BAD_REQUEST
    message = refused.json()["error"]["message"]
    assert "A wallet holds at most $1,000,000,000.00" in message
    assert "so an adjustment can add at most $1.00" in message
    assert billing_state() == before
    assert not AuditLogEntry.objects.filter(action="balance.adjust").exists()


# ---- debit ----


def test_prepaid_debit_takes_usage_from_the_wallet(calls, developer):
    make_prepaid(developer)
    credited = calls.credit(credit_body("USD", "10", tx="top-up-10"))

    response = calls.debit(credit_body("USD", "2", 500000000, tx="usage-1"))

    assert response.status_code == HTTPStatus.OK
    body, times = without_times(response.json())
    assert body == {"wallets": [{"balance": money("USD", "7", 500000000)}]}
    assert times == without_times(credited.json())[1]  # a debit is not a credit
    entry = LedgerEntry.objects.get(transaction_id="usage-1")
    assert (entry.kind, entry.amount, entry.balance_after) == (
        "USAGE",
        -2_500_000_000,
        7_500_000_000,
    )


def _debit_statements(calls: Calls, tx: str, units: str = "1") -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = calls.debit(credit_body("USD", units, tx=tx))
    # The test's own transaction adds a savepoint around the ledger's statement, which a
    # request outside one does not.
    return response, [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]


def test_a_debit_is_two_statements_on_postgresql_and_answers_as_its_replay(
    postgres, calls, developer
):
    """The gateway's debit: the token, its right and the developer in one read; then the
    ledger's one statement, which also reads the wallet as of the change when it is the
    account's only one. With another wallet, those are read as of the change too (a third)."""
    make_prepaid(developer)
    calls.credit(credit_body("USD", "10", tx="top-up-10"))  # the token's last use is noted
    response, statements = _debit_statements(calls, "usage-1")
    assert len(statements) == 2, statements
    assert "WITH gate AS" in statements[0] and "billing_billingaccount" in statements[0]
    assert response.status_code == HTTPStatus.OK
    assert response.json()["wallets"][0]["balance"] == money("USD", "9")
    calls.debit(credit_body("USD", "2", tx="usage-2"))  # the replay must not show this one
    replay, _ = _debit_statements(calls, "usage-1")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == response.json()

    calls.credit(credit_body("EUR", "5", tx="top-up-eur"))
    response, statements = _debit_statements(calls, "usage-3")
    assert len(statements) == 3, statements
    balances = {w["balance"]["currencyCode"]: w["balance"] for w in response.json()["wallets"]}
    assert balances == {"USD": money("USD", "6"), "EUR": money("EUR", "5")}
    replay, _ = _debit_statements(calls, "usage-3")
    assert replay.json() == response.json()


def test_prepaid_debit_beyond_the_balance_fails_and_changes_nothing(calls, developer):
    make_prepaid(developer)
    calls.credit(credit_body("USD", "10", tx="top-up-10"))
    shown = calls.balance().json()
    before = billing_state()

    response = calls.debit(credit_body("USD", "10", 10000000, tx="usage-too-much"))

    error = error_of(response, HTTPStatus.BAD_REQUEST)
    assert error["status"] == "FAILED_PRECONDITION"
    assert "Insufficient funds" in error["message"]
    assert billing_state() == before
    assert calls.balance().json() == shown
    # The refused transaction id stays free for a later, smaller charge.
    assert calls.debit(credit_body("USD", "10", tx="usage-too-much")).status_code == HTTPStatus.OK


def test_prepaid_debit_in_a_currency_without_a_wallet_opens_none(calls, developer):
    make_prepaid(developer)
    calls.credit(credit_body("USD", "10", tx="top-up-10"))
    before = billing_state()

    response = calls.debit(credit_body("EUR", "1", tx="usage-eur"))

    assert error_of(response, HTTPStatus.BAD_REQUEST)["status"] == "FAILED_PRECONDITION"
    assert billing_state() == before
    assert [w["balance"]["currencyCode"] for w in calls.balance().json()["wallets"]] == ["USD"]


def test_postpaid_debit_accrues_a_negative_balance(calls):
    response = calls.debit(credit_body("USD", "5", 500000000, tx="usage-postpaid"))

    assert response.status_code == HTTPStatus.OK
    # Never credited, so no lastCreditTime; nanos carries the sign of the units.
    assert response.json() == {
        "wallets": [{"balance": {"currencyCode": "USD", "units": "-5", "nanos": -500000000}}]
    }
    assert calls.balance().json() == response.json()


def test_prepaid_debit_may_go_below_zero_only_within_the_grace(calls, developer):
    org = organization_settings_get()
    org.prepaid_grace_nanos = 1_000_000_000  # USD 1
    org.save(update_fields=["prepaid_grace_nanos"])
    make_prepaid(developer)
    calls.credit(credit_body("USD", "10", tx="top-up-10"))

    within = calls.debit(credit_body("USD", "11", tx="usage-11"))
    before = billing_state()
    beyond = calls.debit(credit_body("USD", "0", 10000000, tx="usage-cent"))

    assert within.status_code == HTTPStatus.OK
    assert without_times(within.json())[0] == {"wallets": [{"balance": money("USD", "-1")}]}
    assert error_of(beyond, HTTPStatus.BAD_REQUEST)["status"] == "FAILED_PRECONDITION"
    assert billing_state() == before


def test_switching_postpaid_to_prepaid_moves_accrued_usage_out_of_the_wallet(calls):
    calls.debit(credit_body("USD", "5", 500000000, tx="usage-postpaid"))

    assert calls.put_config({"billingType": "PREPAID"}).status_code == HTTPStatus.OK

    # Seed 004: usage accrued while postpaid is billed separately; prepaid starts from zero.
    assert calls.balance().json() == {"wallets": [{"balance": money("USD", "0")}]}
    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.BILLING_TYPE_CHANGE)
    assert (entry.amount, entry.balance_after) == (5_500_000_000, 0)
    refused = calls.debit(credit_body("USD", "1", tx="usage-prepaid"))
    assert error_of(refused, HTTPStatus.BAD_REQUEST)["status"] == "FAILED_PRECONDITION"


def test_switching_prepaid_to_postpaid_keeps_the_balance_as_a_credit(calls, developer):
    make_prepaid(developer)
    calls.credit(credit_body("USD", "20", tx="top-up-20"))
    shown = calls.balance().json()

    assert calls.put_config({"billingType": "POSTPAID"}).status_code == HTTPStatus.OK

    assert calls.balance().json() == shown
    # From now on usage accrues past zero instead of being refused.
    response = calls.debit(credit_body("USD", "25", tx="usage-25"))
    assert response.status_code == HTTPStatus.OK
    assert without_times(response.json())[0] == {"wallets": [{"balance": money("USD", "-5")}]}


def test_replayed_debit_returns_the_first_answer_and_charges_once(calls, developer):
    make_prepaid(developer)
    calls.credit(credit_body("USD", "10", tx="top-up-10"))
    first = calls.debit(credit_body("USD", "4", tx="usage-4"))
    assert first.status_code == HTTPStatus.OK
    assert "Idempotent-Replayed" not in first.headers

    again = calls.debit(credit_body("USD", "4", tx="usage-4"))

    assert again.status_code == HTTPStatus.OK
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Wallet.objects.get().balance == 6_000_000_000
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.USAGE).count() == 1

    # Even once the wallet could no longer pay it, a retry is a replay, not a refusal.
    assert calls.debit(credit_body("USD", "6", tx="usage-6")).status_code == HTTPStatus.OK
    late = calls.debit(credit_body("USD", "4", tx="usage-4"))
    assert late.status_code == HTTPStatus.OK
    assert late["Idempotent-Replayed"] == "true"
    assert late.json() == first.json()
    assert Wallet.objects.get().balance == 0


@pytest.mark.parametrize(
    "operation, body, for_other_developer",
    [
        ("credit", credit_body("USD", "11", tx="tx-1"), False),
        ("credit", credit_body("EUR", "10", tx="tx-1"), False),
        ("credit", credit_body("USD", "10", tx="tx-1"), True),
        ("debit", credit_body("USD", "10", tx="tx-1"), False),
    ],
    ids=["other amount", "other currency", "other developer", "debit reusing a credit's id"],
)
def test_transaction_id_reused_for_something_else_conflicts(
    api, admin_token, calls, other_developer, operation, body, for_other_developer
):
    calls.credit(credit_body("USD", "10", tx="tx-1"))
    before = billing_state()
    target = Calls(api, admin_token, other_developer.email) if for_other_developer else calls

    response = getattr(target, operation)(body)

    error = error_of(response, HTTPStatus.CONFLICT)
    assert error["status"] == "ALREADY_EXISTS"
    assert "tx-1" in error["message"]
    assert billing_state() == before


OPERATIONS = {
    "get config": ("GET", "monetizationConfig", None),
    "put config": ("PUT", "monetizationConfig", {"billingType": "PREPAID"}),
    "get balance": ("GET", "balance", None),
    "credit": ("POST", "balance:credit", credit_body("USD", "5", tx="matrix-credit")),
    "debit": ("POST", "balance:debit", credit_body("USD", "5", tx="matrix-debit")),
    "adjust": ("POST", "balance:adjust", {"adjustment": money("USD", "-5")}),
}


# ---- malformed requests ----

VALID_AMOUNT = money("USD", "1")
MALFORMED = [
    # (operation, body, words the message must contain)
    ("credit", {"transactionAmount": money("usd", "1"), "transactionId": "t"}, "currencyCode"),
    ("credit", {"transactionAmount": money("ABC", "1"), "transactionId": "t"}, "currencyCode"),
    ("credit", {"transactionAmount": {"units": "1"}, "transactionId": "t"}, "currencyCode"),
    ("credit", {"transactionAmount": money("USD", "1", 10**9), "transactionId": "t"}, "nanos"),
    ("credit", {"transactionAmount": money("USD", "-1", -(10**9)), "transactionId": "t"}, "nanos"),
    ("credit", {"transactionAmount": money("USD", "5", -1), "transactionId": "t"}, "nanos"),
    ("credit", {"transactionAmount": money("USD", "five"), "transactionId": "t"}, "units"),
    ("credit", {"transactionAmount": money("USD", "1.5"), "transactionId": "t"}, "units"),
    (
        "credit",
        {"transactionAmount": {**VALID_AMOUNT, "units": 1.5}, "transactionId": "t"},
        "units",
    ),
    (
        "credit",
        {"transactionAmount": {**VALID_AMOUNT, "units": True}, "transactionId": "t"},
        "units",
    ),
    (
        "credit",
        {"transactionAmount": {**VALID_AMOUNT, "units": None}, "transactionId": "t"},
        "units",
    ),
    (
        "credit",
        {"transactionAmount": {**VALID_AMOUNT, "nanos": "5e8"}, "transactionId": "t"},
        "nanos",
    ),
    ("credit", {"transactionAmount": VALID_AMOUNT}, "transactionId"),
    ("credit", {"transactionAmount": VALID_AMOUNT, "transactionId": ""}, "transactionId"),
    ("credit", {"transactionAmount": VALID_AMOUNT, "transactionId": 42}, "transactionId"),
    ("credit", {"transactionAmount": VALID_AMOUNT, "transactionId": "t" * 256}, "transactionId"),
    ("credit", {"transactionAmount": VALID_AMOUNT, "transactionId": "   "}, "transaction id"),
    ("credit", {"transactionId": "t"}, "transactionAmount"),
    (
        "credit",
        {"transactionAmount": "1 USD", "transactionId": "t"},
        "transactionAmount: must be a JSON object, not a string",
    ),
    (
        "debit",
        {"transactionAmount": None, "transactionId": "t"},
        "transactionAmount: must be a JSON object, not null",
    ),
    ("credit", [VALID_AMOUNT], "must be a JSON object, not an array"),
    ("credit", {"transactionAmount": money("USD", "0"), "transactionId": "t"}, "positive"),
    ("credit", {"transactionAmount": money("USD", "-1"), "transactionId": "t"}, "positive"),
    (
        "credit",
        {"transactionAmount": money("USD", "1000000001"), "transactionId": "t"},
        "too large",
    ),
    ("debit", {"transactionAmount": money("EURO", "1"), "transactionId": "t"}, "currencyCode"),
    ("debit", {"transactionAmount": money("USD", "1", -(10**9)), "transactionId": "t"}, "nanos"),
    ("debit", {"transactionAmount": money("USD", "0.5"), "transactionId": "t"}, "units"),
    ("debit", {"transactionAmount": VALID_AMOUNT}, "transactionId"),
    ("debit", {"transactionAmount": money("USD", "-3"), "transactionId": "t"}, "positive"),
    ("adjust", {}, "adjustment"),
    ("adjust", {"adjustment": money("dollars", "1")}, "currencyCode"),
    ("adjust", {"adjustment": money("USD", "1", 10**9)}, "adjustment.nanos"),
    ("adjust", {"adjustment": money("USD", "2.5")}, "adjustment.units"),
    ("adjust", {"adjustment": money("USD", "5", -1)}, "nanos"),
    ("adjust", {"adjustment": money("USD", "0")}, "zero"),
    ("adjust", {"adjustment": VALID_AMOUNT, "transactionId": ""}, "transactionId"),
    ("put_config", {}, "billingType"),
    ("put_config", {"billingType": "prepaid"}, "billingType"),
    ("put_config", {"billingType": "FREE"}, "billingType"),
    ("put_config", {"billingType": ""}, "billingType"),
    ("put_config", {"billingType": 1}, "billingType"),
    ("put_config", {"billingType": None}, "billingType"),
]


@pytest.mark.parametrize(
    "operation, body, named", MALFORMED, ids=[f"{op}-{i}" for i, (op, _, _) in enumerate(MALFORMED)]
)
def test_malformed_body_is_refused_with_a_message_naming_the_field(
    calls, developer, operation, body, named
):
    make_prepaid(developer)
    calls.credit(credit_body("USD", "10", tx="top-up-10"))
    before = billing_state()

    response = getattr(calls, operation)(body)

    error = error_of(response, HTTPStatus.BAD_REQUEST)
    assert error["status"] == "INVALID_ARGUMENT"
    assert named.lower() in error["message"].lower()
    assert billing_state() == before


@pytest.mark.parametrize(
    "method, suffix",
    [
        ("PUT", "monetizationConfig"),
        ("POST", "balance:credit"),
        ("POST", "balance:debit"),
        ("POST", "balance:adjust"),
    ],
)
@pytest.mark.parametrize("raw", ['{"transactionId": "t",', "not json", ""])
def test_body_that_is_not_json_is_refused(api, admin_token, developer, method, suffix, raw):
    before = billing_state()

    response = api.call(method, developer_path(developer.email, suffix), raw=raw, token=admin_token)

    assert error_of(response, HTTPStatus.BAD_REQUEST)["status"] == "INVALID_ARGUMENT"
    assert billing_state() == before


@pytest.mark.parametrize("field", ["units", "nanos"])
def test_units_past_int64_are_refused_as_too_large(calls, developer, field):
    """The canonical int64 string of an overflowing amount was told it was not a whole number."""
    before = billing_state()
    amount = {"currencyCode": "USD", "units": "1", field: "99999999999999999999"}

    response = calls.credit({"transactionAmount": amount, "transactionId": "too-large"})

    error = error_of(response, HTTPStatus.BAD_REQUEST)
    assert error["message"].startswith(f"transactionAmount.{field} is too large")
    assert "1,000,000,000" in error["message"]
    assert billing_state() == before


def test_units_with_leading_zeros_are_the_number_they_spell(calls, developer):
    response = calls.credit(credit_body("USD", "00000000000000000000150", tx="zeros"))

    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["wallets"][0]["balance"] == {"currencyCode": "USD", "units": "150"}


@pytest.mark.parametrize(
    "method, suffix",
    [
        ("PUT", "monetizationConfig"),
        ("POST", "balance:credit"),
        ("POST", "balance:debit"),
        ("POST", "balance:adjust"),
    ],
)
@pytest.mark.parametrize(
    "raw, said",
    [
        ("", "The request body is empty"),
        ("[]", "must be a JSON object, not an array"),
        ('"PREPAID"', "must be a JSON object, not a string"),
        ("150", "must be a JSON object, not a number"),
        ("null", "must be a JSON object, not null"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused_saying_so(
    api, admin_token, developer, method, suffix, raw, said
):
    """An empty body was answered 'Field required' naming no field, and an array or a string
    as if the fields inside it were missing."""
    before = billing_state()

    response = api.call(method, developer_path(developer.email, suffix), raw=raw, token=admin_token)

    assert said in error_of(response, HTTPStatus.BAD_REQUEST)["message"]
    assert billing_state() == before


# Strings that pass str.isdigit() but are not int64 JSON: each must be a clean 400, never a 500.
@pytest.mark.parametrize(
    "operation, field, value",
    [
        ("credit", "units", "٣"),
        ("credit", "units", "²"),
        ("credit", "units", "+-5"),
        ("debit", "units", "--5"),
        ("credit", "units", "1" * 5000),
        ("adjust", "nanos", "¹"),
    ],
    ids=[
        "arabic-indic digit",
        "superscript units",
        "plus-minus units",
        "double minus units",
        "5000 digits",
        "nanos",
    ],
)
def test_units_and_nanos_that_only_look_numeric_are_refused(
    calls, developer, operation, field, value
):
    calls.credit(credit_body("USD", "10", tx="top-up-10"))
    before = billing_state()
    amount = {"currencyCode": "USD", "units": "1", field: value}
    body = (
        {"adjustment": amount}
        if operation == "adjust"
        else {"transactionAmount": amount, "transactionId": "t"}
    )

    response = getattr(calls, operation)(body)

    error = error_of(response, HTTPStatus.BAD_REQUEST)
    assert field in error["message"]
    assert len(error["message"]) < 200  # the offending value is quoted, not echoed in full
    assert billing_state() == before


@pytest.mark.parametrize(
    "operation, body",
    [
        ("credit", credit_body("USD", "1", tx="top-up\x00")),
        ("debit", credit_body("USD", "1", tx="usage\n2")),
        ("adjust", {"adjustment": money("USD", "1"), "transactionId": "fix\tup"}),
    ],
    ids=["NUL", "newline", "tab"],
)
def test_transaction_id_with_control_characters_is_refused(calls, operation, body):
    # PostgreSQL text cannot hold NUL at all; on every database such an id is refused alike.
    before = billing_state()

    response = getattr(calls, operation)(body)

    error = error_of(response, HTTPStatus.BAD_REQUEST)
    assert error["status"] == "INVALID_ARGUMENT"
    assert "transaction id" in error["message"].lower()
    assert billing_state() == before


@pytest.mark.parametrize("operation", ["get balance", "credit"])
@pytest.mark.parametrize(
    "email",
    ["a%00b@example.com", "a%0Ab@example.com", "a" * 250 + "@example.com"],
    ids=["NUL", "newline", "too long"],
)
def test_developer_email_that_cannot_be_an_address_is_not_found(api, admin_token, operation, email):
    method, suffix, body = OPERATIONS[operation]
    before = billing_state()

    response = api.call(method, developer_path(email, suffix), body, token=admin_token)

    assert error_of(response, HTTPStatus.NOT_FOUND)["status"] == "NOT_FOUND"
    assert billing_state() == before


# ---- authentication ----


def _revoked(developer: User) -> str:
    token, raw = api_token_create(user=developer, name="revoked")
    api_token_revoke(token=token)
    return f"Bearer {raw}"


def _inactive_user(developer: User) -> str:
    user = DeveloperFactory()
    _, raw = api_token_create(user=user, name="inactive")
    user.is_active = False
    user.save(update_fields=["is_active"])
    return f"Bearer {raw}"


UNAUTHENTICATED = {
    "no header": lambda developer: None,
    "basic scheme": lambda developer: "Basic ZGV2OnNlY3JldA==",
    "token scheme": lambda developer: f"Token {api_token_create(user=developer, name='t')[1]}",
    "bearer without token": lambda developer: "Bearer ",
    "unknown token": lambda developer: "Bearer dp_" + "x" * 43,
    "token without prefix": lambda developer: "Bearer " + "x" * 43,
    "revoked token": _revoked,
    "inactive user": _inactive_user,
}


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("case", UNAUTHENTICATED)
def test_request_without_a_valid_token_is_unauthenticated(api, developer, operation, case):
    authorization = UNAUTHENTICATED[case](developer)
    method, suffix, body = OPERATIONS[operation]
    before = billing_state()

    response = api.call(
        method,
        developer_path(developer.email, suffix),
        body,
        authorization=authorization,
    )

    assert error_of(response, HTTPStatus.UNAUTHORIZED)["status"] == "UNAUTHENTICATED"
    assert response["WWW-Authenticate"] == "Bearer"
    assert billing_state() == before


# ---- permissions ----

ALLOWED = {
    "owner": {"get config", "get balance"},
    "other developer": set(),
    "admin without permission": set(),
    "portal admin": set(OPERATIONS),
}
ROLE_FIXTURES = {
    "owner": "developer",
    "other developer": "other_developer",
    "admin without permission": "admin_without_permission",
    "portal admin": "portal_admin",
}
ANSWERS = {
    "get config": {"billingType": "POSTPAID"},
    "put config": {"billingType": "PREPAID"},
    "get balance": {"wallets": []},
    "credit": {"wallets": [{"balance": money("USD", "5")}]},
    "debit": {"wallets": [{"balance": money("USD", "-5")}]},
    "adjust": {"wallets": [{"balance": money("USD", "5")}]},
}


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("role", [*ROLE_FIXTURES, "anonymous"])
def test_permission_matrix(api, request, developer, role, operation):
    method, suffix, body = OPERATIONS[operation]
    token = (
        None if role == "anonymous" else api.token_for(request.getfixturevalue(ROLE_FIXTURES[role]))
    )
    before = billing_state()

    response = api.call(method, developer_path(developer.email, suffix), body, token=token)

    if role == "anonymous":
        assert error_of(response, HTTPStatus.UNAUTHORIZED)["status"] == "UNAUTHENTICATED"
        assert billing_state() == before
    elif operation in ALLOWED[role]:
        assert response.status_code == HTTPStatus.OK
        answer = response.json()
        if "wallets" in answer:
            answer = without_times(answer)[0]
        assert answer == ANSWERS[operation]
    else:
        error = error_of(response, HTTPStatus.FORBIDDEN)
        assert error["status"] == "PERMISSION_DENIED"
        assert billing_state() == before


NEEDED_PERMISSION = {
    "get config": "view_any_prepaid_balance",
    "put config": "update_any_billing_type",
    "get balance": "view_any_prepaid_balance",
    "credit": "adjust_any_prepaid_balance",
    "debit": "debit_any_prepaid_balance",
    "adjust": "adjust_any_prepaid_balance",
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_each_operation_needs_exactly_its_permission(api, developer, operation):

    method, suffix, body = OPERATIONS[operation]
    codename = NEEDED_PERMISSION[operation]
    holder = AdminFactory()
    holder.user_permissions.add(Permission.objects.get(codename=codename))
    # An admin holding every billing permission but this one.
    others = AdminFactory()
    others.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="billing").exclude(codename=codename)
    )
    path = developer_path(developer.email, suffix)

    refused = api.call(method, path, body, token=api.token_for(others))
    allowed = api.call(method, path, body, token=api.token_for(holder))

    assert codename in error_of(refused, HTTPStatus.FORBIDDEN)["message"]
    assert allowed.status_code == HTTPStatus.OK


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("role", ["other developer", "admin without permission"])
def test_permission_is_checked_before_the_developer_is_looked_up(api, request, role, operation):
    method, suffix, body = OPERATIONS[operation]
    token = api.token_for(request.getfixturevalue(ROLE_FIXTURES[role]))

    response = api.call(method, developer_path("nobody@example.com", suffix), body, token=token)

    assert error_of(response, HTTPStatus.FORBIDDEN)["status"] == "PERMISSION_DENIED"


# ---- not found ----


@pytest.mark.parametrize("operation", OPERATIONS)
def test_unknown_organization_is_not_found(api, admin_token, developer, operation):
    method, suffix, body = OPERATIONS[operation]
    before = billing_state()

    response = api.call(
        method, developer_path(developer.email, suffix, org="other-org"), body, token=admin_token
    )

    error = error_of(response, HTTPStatus.NOT_FOUND)
    assert error["status"] == "NOT_FOUND"
    assert "other-org" in error["message"]
    assert billing_state() == before


def _staff_email() -> str:
    return AdminFactory().email


def _inactive_developer_email() -> str:
    return DeveloperFactory(is_active=False).email


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    "target",
    [lambda: "nobody@example.com", _staff_email, _inactive_developer_email],
    ids=["unknown email", "staff user", "inactive developer"],
)
def test_who_is_not_a_developer_is_not_found(api, admin_token, operation, target):
    method, suffix, body = OPERATIONS[operation]
    email = target()
    before = billing_state()

    response = api.call(method, developer_path(email, suffix), body, token=admin_token)

    error = error_of(response, HTTPStatus.NOT_FOUND)
    assert error["status"] == "NOT_FOUND"
    assert email in error["message"]
    assert billing_state() == before


def test_own_config_and_balance_are_found_whatever_the_email_case(api, developer, owner_token):
    path = developer_path(developer.email.upper(), "monetizationConfig")

    response = api.call("GET", path, token=owner_token)

    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"billingType": "POSTPAID"}


def test_a_token_reads_only_its_own_wallet_when_emails_fold_alike(api):
    """ "ſ" (long s) is its own lower case but upper-cases to "S": the database's
    case-insensitive match would take ſam@ for sam@. The API matches emails exactly."""
    sam = User.objects.create_user("sam@example.com")
    long_s = User.objects.create_user("ſam@example.com")
    wallet_credit(
        account=billing_account_get_or_create(user=sam),
        money=money_parse("777", "USD"),
        transaction_id="sams-money",
        actor=Actor.system(),
    )

    response = api.call("GET", developer_path(long_s.email, "balance"), token=api.token_for(long_s))

    assert response.status_code == HTTPStatus.OK
    assert "777" not in response.content.decode()


# ---- create_api_token ----


def test_create_api_token_prints_a_working_token_and_keeps_only_its_hash(
    api, portal_admin, developer
):
    out, err = StringIO(), StringIO()

    call_command(
        "create_api_token", portal_admin.email, "--name", "billing script", stdout=out, stderr=err
    )

    raw = out.getvalue().strip()
    assert raw.startswith("dp_") and len(raw) > 30
    assert raw not in err.getvalue()  # shown once, on stdout only
    token = ApiToken.objects.get()
    assert (token.user, token.name) == (portal_admin, "billing script")
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    stored = [str(getattr(token, field.attname)) for field in ApiToken._meta.concrete_fields]
    assert not any(raw in value for value in stored)

    # It acts with the portal admin's permissions.
    response = api.call(
        "POST",
        developer_path(developer.email, "balance:credit"),
        credit_body("USD", "3", tx="from-script"),
        token=raw,
    )
    assert response.status_code == HTTPStatus.OK
    assert without_times(response.json())[0] == {"wallets": [{"balance": money("USD", "3")}]}


def test_create_api_token_for_a_developer_acts_as_that_developer(api, developer, other_developer):
    out = StringIO()
    call_command("create_api_token", developer.email, stdout=out, stderr=StringIO())
    raw = out.getvalue().strip()

    own = api.call("GET", developer_path(developer.email, "balance"), token=raw)
    other = api.call("GET", developer_path(other_developer.email, "balance"), token=raw)

    assert own.status_code == HTTPStatus.OK
    assert error_of(other, HTTPStatus.FORBIDDEN)["status"] == "PERMISSION_DENIED"


def test_create_api_token_for_an_unknown_email_fails(db):
    with pytest.raises(CommandError, match="nobody@example.com"):
        call_command("create_api_token", "nobody@example.com", stdout=StringIO(), stderr=StringIO())
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("name", ["x" * 101, "  "])
def test_create_api_token_with_a_name_too_long_or_blank_fails_clearly(developer, name):
    with pytest.raises(CommandError, match="--name must be 1 to 100 characters"):
        call_command("create_api_token", developer.email, "--name", name)
    assert not ApiToken.objects.exists()


def test_create_api_token_for_an_inactive_user_fails(developer):
    developer.is_active = False
    developer.save(update_fields=["is_active"])

    with pytest.raises(CommandError, match="inactive"):
        call_command("create_api_token", developer.email, stdout=StringIO(), stderr=StringIO())
    assert not ApiToken.objects.exists()


# ---- errors outside the endpoints: JSON too ----


def test_an_unknown_path_under_v1_answers_json_404(api, developer, owner_token):
    response = api.call("GET", developer_path(developer.email, "nope"), token=owner_token)

    error = error_of(response, HTTPStatus.NOT_FOUND)
    assert error["status"] == "NOT_FOUND" and "/nope" in error["message"]


def test_a_method_an_endpoint_does_not_take_answers_json_405(api, developer, owner_token):
    response = api.call(
        "DELETE", developer_path(developer.email, "monetizationConfig"), token=owner_token
    )

    error = error_of(response, HTTPStatus.METHOD_NOT_ALLOWED)
    assert "DELETE is not allowed" in error["message"]
    assert "GET" in response["Allow"]


@pytest.mark.parametrize("suffix", ["balance", "monetizationConfig"])
def test_head_is_answered_like_get_without_a_body(api, developer, owner_token, suffix):
    """Uptime checks and link checkers send HEAD; the API answered 405."""
    path = developer_path(developer.email, suffix)

    get = api.call("GET", path, token=owner_token)
    head = api.call("HEAD", path, token=owner_token)

    assert get.status_code == head.status_code == HTTPStatus.OK
    assert head["Content-Type"] == get["Content-Type"]
    assert head.content == b""


@pytest.mark.parametrize("suffix", ["balance", "monetizationConfig"])
def test_a_405_lists_head_where_get_is_taken(api, developer, owner_token, suffix):
    response = api.call("DELETE", developer_path(developer.email, suffix), token=owner_token)

    allowed = {method.strip() for method in response["Allow"].split(",")}
    assert {"GET", "HEAD"} <= allowed
    assert "HEAD" in error_of(response, HTTPStatus.METHOD_NOT_ALLOWED)["message"]


def test_head_on_an_endpoint_without_get_is_still_405(api, developer, admin_token):
    response = api.call(
        "HEAD", developer_path(developer.email, "balance:credit"), token=admin_token
    )

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response["Allow"] == "POST"
    assert response.content == b""  # HEAD: the error's JSON is left out like any body


def test_a_body_too_large_to_read_answers_json_400_and_changes_nothing(api, admin_token, developer):
    before = billing_state()
    body = {**credit_body("USD", "1", tx="big"), "memo": "x" * 3_000_000}

    response = api.call(
        "POST", developer_path(developer.email, "balance:credit"), body, token=admin_token
    )

    error = error_of(response, HTTPStatus.BAD_REQUEST)
    assert error["status"] == "INVALID_ARGUMENT"
    assert "2,621,440 bytes" in error["message"]
    assert billing_state() == before


def test_a_failure_on_the_server_answers_json_500(api, owner_token, developer, monkeypatch):
    def database_gone(**kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    # A stand-in for any unexpected failure below the API: the answer is what is tested.
    monkeypatch.setattr("billing.api.developers.wallets_balance", database_gone)

    response = api.call("GET", developer_path(developer.email, "balance"), token=owner_token)

    error = error_of(response, HTTPStatus.INTERNAL_SERVER_ERROR)
    assert error["status"] == "INTERNAL"
    assert "database" not in error["message"]  # nothing of the failure leaks to the caller


@pytest.mark.parametrize(
    "operation, transaction_id",
    [
        ("credit", "pi_3PqY0000000000000000000"),  # would make the card payment a replay
        ("debit", "refund:ch_3PqY000000000:2000"),  # would block the refund's debit
        ("debit", "dispute:dp_1PqY0000000"),
        ("credit", "refund-failed:re_1PqY0000"),
        ("adjust", "dispute-won:dp_1PqY0000000"),
        ("adjust", "billing-type-change:7:USD"),
    ],
)
def test_the_portals_own_transaction_ids_are_refused(calls, developer, operation, transaction_id):
    make_prepaid(developer)
    calls.credit(credit_body("USD", "10", tx="top-up-10"))
    before = billing_state()
    body = (
        {"adjustment": money("USD", "1"), "transactionId": transaction_id}
        if operation == "adjust"
        else credit_body("USD", "1", tx=transaction_id)
    )

    response = getattr(calls, operation)(body)

    error = error_of(response, HTTPStatus.BAD_REQUEST)
    prefix = transaction_id.split(":")[0] + ":" if ":" in transaction_id else "pi_"
    assert f"ids starting with '{prefix}' are reserved" in error["message"]
    assert billing_state() == before
    # A lookalike that is not one of the portal's prefixes is the caller's to use.
    fine = transaction_id.replace("_", "-", 1) if prefix == "pi_" else "my-" + transaction_id
    ok_body = {**body, "transactionId": fine}
    assert getattr(calls, operation)(ok_body).status_code == HTTPStatus.OK


@pytest.mark.parametrize("scheme", ["Token ", "", "Basic "], ids=["token", "bare", "basic"])
def test_a_token_sent_with_another_scheme_is_not_logged(
    api, developer, owner_token, settings, caplog, scheme
):
    """With DEBUG on, django-ninja's bearer check logged the whole header of any other scheme,
    writing a real token to the log in plain text."""
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)

    response = api.call(
        "GET", developer_path(developer.email, "balance"), authorization=scheme + owner_token
    )

    assert error_of(response, HTTPStatus.UNAUTHORIZED)["status"] == "UNAUTHENTICATED"
    assert owner_token not in caplog.text
    assert owner_token[len(TOKEN_PREFIX) :] not in caplog.text


def test_reusing_another_developers_transaction_id_does_not_tell_their_amount(
    api, admin_token, calls, other_developer
):
    """The 409 told any token another developer's top-up: "was already used for $150.21
    (top-up)". It says only that the id is taken."""
    calls.credit(credit_body("USD", "150", 210000000, tx="tx-private"))
    other = Calls(api, admin_token, other_developer.email)

    message = error_of(other.credit(credit_body("USD", "1", tx="tx-private")), HTTPStatus.CONFLICT)[
        "message"
    ]

    assert message == "Transaction id 'tx-private' is already taken; use a new transaction id."
    assert "150.21" not in message and "top-up" not in message


def test_reusing_ones_own_transaction_id_says_what_it_was_used_for(calls):
    calls.credit(credit_body("USD", "150", 210000000, tx="tx-mine"))
    message = error_of(calls.credit(credit_body("USD", "1", tx="tx-mine")), HTTPStatus.CONFLICT)[
        "message"
    ]
    assert "was already used for $150.21 (top-up)" in message
