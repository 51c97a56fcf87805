from __future__ import annotations

import pytest
from django.core.management import call_command

from billing.billing_type.services import billing_type_set, organization_default_billing_type_set
from billing.exceptions import BillingError, InsufficientFunds, TransactionConflict
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_adjust, wallet_credit, wallet_debit
from billing.models import (
    AuditLogEntry,
    BillingTypeChange,
    LedgerEntry,
    OrganizationSettings,
    Wallet,
)
from billing.money import Money
from tests.conftest import usd

pytestmark = pytest.mark.django_db

USD = "USD"


@pytest.fixture
def prepaid(developer):
    account = developer.billing_account
    billing_type_set(
        account=account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.API,
    )
    account.refresh_from_db()
    return account


def test_first_credit_creates_the_wallet_and_one_entry(prepaid):
    result = wallet_credit(
        account=prepaid, money=usd("150.21"), transaction_id="t1", actor=Actor.system()
    )
    wallet = Wallet.objects.get(billing_account=prepaid, currency=USD)
    assert wallet.balance == 150_210_000_000
    assert wallet.last_credit_at is not None
    assert result.entry.balance_after == wallet.balance and not result.replayed
    assert result.entry.kind == LedgerEntry.Kind.TOP_UP


def test_replay_returns_the_first_result_and_changes_nothing(prepaid):
    first = wallet_credit(
        account=prepaid, money=usd("10"), transaction_id="t1", actor=Actor.system()
    )
    wallet_credit(account=prepaid, money=usd("5"), transaction_id="t2", actor=Actor.system())
    again = wallet_credit(
        account=prepaid, money=usd("10"), transaction_id="t1", actor=Actor.system()
    )
    assert again.replayed and again.entry.pk == first.entry.pk
    assert again.entry.balance_after == 10_000_000_000
    assert Wallet.objects.get().balance == 15_000_000_000
    assert LedgerEntry.objects.count() == 2


@pytest.mark.parametrize(
    "money, kind",
    [
        (Money(11 * 10**9, "USD"), "TOP_UP"),
        (Money(10 * 10**9, "EUR"), "TOP_UP"),
        (Money(10 * 10**9, "USD"), "USAGE"),
    ],
)
def test_same_transaction_id_with_another_amount_currency_or_kind_conflicts(prepaid, money, kind):
    wallet_credit(account=prepaid, money=usd("10"), transaction_id="t1", actor=Actor.system())
    with pytest.raises(TransactionConflict, match="already used for \\$10.00"):
        if kind == "USAGE":
            wallet_debit(account=prepaid, money=money, transaction_id="t1", actor=Actor.system())
        else:
            wallet_credit(account=prepaid, money=money, transaction_id="t1", actor=Actor.system())
    assert Wallet.objects.get(currency=USD).balance == 10_000_000_000
    assert not Wallet.objects.filter(currency="EUR").exists()


def test_same_transaction_id_for_another_developer_conflicts(prepaid, other_developer):
    wallet_credit(account=prepaid, money=usd("10"), transaction_id="t1", actor=Actor.system())
    with pytest.raises(TransactionConflict):
        wallet_credit(
            account=other_developer.billing_account,
            money=usd("10"),
            transaction_id="t1",
            actor=Actor.system(),
        )
    assert not Wallet.objects.filter(billing_account=other_developer.billing_account).exists()


def test_prepaid_debit_beyond_balance_is_refused_and_changes_nothing(prepaid):
    wallet_credit(account=prepaid, money=usd("5"), transaction_id="t1", actor=Actor.system())
    with pytest.raises(InsufficientFunds, match=r"balance is \$5.00 and this debit is \$5.01"):
        wallet_debit(account=prepaid, money=usd("5.01"), transaction_id="d1", actor=Actor.system())
    assert Wallet.objects.get().balance == 5_000_000_000
    assert not LedgerEntry.objects.filter(transaction_id="d1").exists()
    wallet_debit(account=prepaid, money=usd("5"), transaction_id="d2", actor=Actor.system())
    assert Wallet.objects.get().balance == 0


def test_prepaid_debit_without_a_wallet_is_refused(prepaid):
    with pytest.raises(InsufficientFunds):
        wallet_debit(account=prepaid, money=usd("1"), transaction_id="d1", actor=Actor.system())
    assert not Wallet.objects.exists()


def test_grace_lets_prepaid_go_slightly_negative(prepaid):
    OrganizationSettings.objects.update(prepaid_grace_nanos=2 * 10**9)
    wallet_debit(account=prepaid, money=usd("2"), transaction_id="d1", actor=Actor.system())
    with pytest.raises(InsufficientFunds):
        wallet_debit(account=prepaid, money=usd("0.01"), transaction_id="d2", actor=Actor.system())
    assert Wallet.objects.get().balance == -2 * 10**9


def test_replayed_debit_is_a_replay_even_when_funds_ran_out(prepaid):
    wallet_credit(account=prepaid, money=usd("3"), transaction_id="t1", actor=Actor.system())
    first = wallet_debit(account=prepaid, money=usd("3"), transaction_id="d1", actor=Actor.system())
    again = wallet_debit(account=prepaid, money=usd("3"), transaction_id="d1", actor=Actor.system())
    assert again.replayed and again.entry.pk == first.entry.pk


def test_postpaid_accrues_and_a_credit_covers_the_negative_balance_first(developer):
    account = developer.billing_account  # not specified: defaults to Postpaid
    wallet_debit(account=account, money=usd("7.5"), transaction_id="d1", actor=Actor.system())
    assert Wallet.objects.get().balance == -7_500_000_000
    wallet_credit(account=account, money=usd("10"), transaction_id="t1", actor=Actor.system())
    assert Wallet.objects.get().balance == 2_500_000_000


def test_amounts_must_be_positive_and_ids_present(prepaid):
    with pytest.raises(BillingError, match="positive"):
        wallet_credit(
            account=prepaid, money=Money(0, USD), transaction_id="t", actor=Actor.system()
        )
    with pytest.raises(BillingError, match="transaction id is required"):
        wallet_credit(account=prepaid, money=usd("1"), transaction_id=" ", actor=Actor.system())
    assert not Wallet.objects.exists()


def test_overflowing_balance_is_refused(prepaid):
    wallet_credit(
        account=prepaid, money=Money(10**18, USD), transaction_id="t1", actor=Actor.system()
    )
    with pytest.raises(BillingError, match="largest amount"):
        wallet_credit(
            account=prepaid, money=Money(1, USD), transaction_id="t2", actor=Actor.system()
        )
    assert Wallet.objects.get().balance == 10**18


def test_adjust_needs_a_reason_and_is_audited(prepaid, portal_admin):

    with pytest.raises(BillingError, match="reason is required"):
        wallet_adjust(
            account=prepaid, change=usd("5"), actor=Actor.for_user(portal_admin), reason=" "
        )
    wallet_credit(account=prepaid, money=usd("5"), transaction_id="t1", actor=Actor.system())
    result = wallet_adjust(
        account=prepaid,
        change=-usd("5"),
        actor=Actor.for_user(portal_admin),
        reason="under-charged",
    )
    assert result.entry.kind == LedgerEntry.Kind.ADJUSTMENT and result.entry.amount == -5 * 10**9
    audit = AuditLogEntry.objects.get(action="balance.adjust")
    assert audit.actor == portal_admin and audit.data["reason"] == "under-charged"
    assert audit.data["change_nanos"] == -5 * 10**9


def test_prepaid_to_postpaid_keeps_the_balance_as_a_credit(prepaid):
    wallet_credit(account=prepaid, money=usd("12.5"), transaction_id="t1", actor=Actor.system())
    billing_type_set(
        account=prepaid,
        billing_type="POSTPAID",
        changed_by=None,
        source=BillingTypeChange.Source.API,
    )
    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.BILLING_TYPE_CHANGE)
    assert entry.amount == 0 and entry.balance_after == 12_500_000_000
    assert "$12.50 carried into postpaid billing as a credit" in entry.memo


def test_postpaid_to_prepaid_moves_accrued_usage_to_a_separate_invoice(developer):
    account = developer.billing_account
    wallet_debit(account=account, money=usd("30"), transaction_id="d1", actor=Actor.system())
    organization_default_billing_type_set(billing_type="PREPAID", changed_by=None)
    wallet = Wallet.objects.get()
    assert wallet.balance == 0
    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.BILLING_TYPE_CHANGE)
    assert entry.amount == 30 * 10**9 and "$30.00 moved to a separate invoice" in entry.memo


def test_check_ledger_is_clean_then_catches_a_tampered_balance(prepaid, capsys):
    wallet_credit(account=prepaid, money=usd("10"), transaction_id="t1", actor=Actor.system())
    wallet_debit(account=prepaid, money=usd("2.25"), transaction_id="d1", actor=Actor.system())
    call_command("check_ledger")
    assert "OK: 1 wallets match" in capsys.readouterr().out
    Wallet.objects.update(balance=1)
    with pytest.raises(SystemExit) as exit_info:
        call_command("check_ledger")
    assert exit_info.value.code == 1
    assert "balance $0.000000001 but entries sum to $7.75" in capsys.readouterr().err
