"""Credit lots: debits take the lot that expires first (then the oldest), a credit first pays
what is owed, refunds and disputes take back their own lot, and what is left at expiry is
debited once as `expiry:<lot>`; the lots always add up to the balance (its positive part)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from billing.expiry.lots import lots_as_of_now, lots_count
from billing.expiry.selectors import lots_mismatches
from billing.expiry.services import credit_lifetime_set, credits_expire
from billing.ledger.entries import Actor, ledger_apply
from billing.models import CreditLot, LedgerEntry, TopUp, Wallet
from billing.money import NANOS_PER_UNIT
from billing.top_ups.confirmations import (
    top_up_dispute,
    top_up_refund,
    top_up_refund_fail,
    top_up_succeed,
)
from tests.conftest import usd

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system()
DAY = timedelta(days=1)
_n = iter(range(10**6))


def move(account, dollars: str, kind: str, *, days_ago: float = 0, lot_id=None) -> LedgerEntry:
    """One ledger entry of `dollars` (signed), dated `days_ago`."""
    result = ledger_apply(
        account=account,
        currency="USD",
        delta=usd(dollars.lstrip("-")).nanos * (-1 if dollars.startswith("-") else 1),
        kind=kind,
        transaction_id=f"t{next(_n)}",
        actor=SYSTEM,
        lot_id=lot_id,
    )
    if days_ago:
        LedgerEntry.objects.filter(pk=result.entry.pk).update(
            created_at=timezone.now() - days_ago * DAY
        )
    return result.entry


def credit(account, dollars: str, **kw) -> LedgerEntry:
    return move(account, dollars, "TOP_UP", **kw)


def debit(account, dollars: str, **kw) -> LedgerEntry:
    return move(account, f"-{dollars}", "USAGE", **kw)


def wallet(account) -> Wallet:
    return Wallet.objects.get(billing_account=account, currency="USD")


def left(account) -> list[str]:
    """What is left in each lot with money, the first to expire first, in dollars."""
    book = lots_count(wallet_id=wallet(account).pk)
    return [str(lot.remaining / NANOS_PER_UNIT) for lot in book.open_lots()]


def expire(days_from_now: float = 0):
    return credits_expire(as_of=timezone.now() + days_from_now * DAY)


def lifetime(days: int) -> None:
    credit_lifetime_set(days=days, changed_by=None)


# --- the order debits take lots in ------------------------------------------------------------


def test_a_debit_takes_the_lot_that_expires_first(prepaid_account):
    credit(prepaid_account, "10", days_ago=100)
    credit(prepaid_account, "5", days_ago=10)
    debit(prepaid_account, "4")
    assert left(prepaid_account) == ["6.0", "5.0"]


def test_a_debit_larger_than_the_first_lot_goes_on_to_the_next(prepaid_account):
    credit(prepaid_account, "10", days_ago=100)
    credit(prepaid_account, "5", days_ago=10)
    debit(prepaid_account, "12")
    assert left(prepaid_account) == ["3.0"]


def test_a_shorter_lifetime_later_makes_a_newer_lot_expire_first(prepaid_account):
    credit(prepaid_account, "10", days_ago=100)  # expires in 265 days
    left(prepaid_account)  # counted under the 365-day lifetime
    lifetime(30)
    credit(prepaid_account, "5")  # expires in 30 days: taken first
    debit(prepaid_account, "2")
    assert left(prepaid_account) == ["3.0", "10.0"]


def test_with_lifetime_zero_a_credit_never_expires_and_goes_last(prepaid_account):
    lifetime(0)
    credit(prepaid_account, "5")
    lifetime(365)
    credit(prepaid_account, "10")
    debit(prepaid_account, "1")
    book = lots_count(wallet_id=wallet(prepaid_account).pk)
    assert [
        (lot.remaining // NANOS_PER_UNIT, lot.expires_at is None) for lot in book.open_lots()
    ] == [
        (9, False),
        (5, True),
    ]


def test_counting_in_many_steps_gives_what_counting_once_does(prepaid_account, developer):
    steps = [("10", 50), ("-3", 40), ("7", 30), ("-9", 20), ("2", 10), ("-1", 0)]
    for dollars, days_ago in steps:
        move(
            prepaid_account, dollars, "TOP_UP" if dollars[0] != "-" else "USAGE", days_ago=days_ago
        )
        left(prepaid_account)  # counted after each entry
    stepwise = left(prepaid_account)
    CreditLot.objects.filter(wallet=wallet(prepaid_account)).delete()
    Wallet.objects.filter(pk=wallet(prepaid_account).pk).update(lots_counted_through=0)
    assert left(prepaid_account) == stepwise == ["4.0", "2.0"]


# --- negative balances --------------------------------------------------------------------------


def test_a_negative_balance_is_not_a_lot_and_a_credit_first_pays_it(prepaid_account):
    credit(prepaid_account, "5")
    move(prepaid_account, "-8", "USAGE")  # owed usage: the balance goes to -3
    assert left(prepaid_account) == []
    credit(prepaid_account, "10")
    assert left(prepaid_account) == ["7.0"]
    lot = CreditLot.objects.get(wallet=wallet(prepaid_account), remaining__gt=0)
    assert lot.amount == 7 * NANOS_PER_UNIT  # what the credit put into lots
    assert lots_mismatches() == []


def test_a_credit_smaller_than_the_debt_opens_no_lot(prepaid_account):
    move(prepaid_account, "-8", "USAGE")
    credit(prepaid_account, "5")
    assert left(prepaid_account) == []
    assert not CreditLot.objects.filter(wallet=wallet(prepaid_account)).exists()


# --- expiry -------------------------------------------------------------------------------------


def test_what_is_left_of_a_partly_spent_lot_expires_once(prepaid_account):
    lifetime(30)
    credit(prepaid_account, "10", days_ago=31)
    credit(prepaid_account, "4", days_ago=1)
    debit(prepaid_account, "2.50")

    run = expire()

    assert [(e.kind, e.amount) for e in run.booked] == [("EXPIRY", -7_500_000_000)]
    expired = CreditLot.objects.get(expired_at__isnull=False)
    assert run.booked[0].transaction_id == f"expiry:{expired.pk}"
    assert run.booked[0].lot_id == expired.pk
    assert expired.expiry_entry_id == run.booked[0].pk and expired.remaining == 0
    assert wallet(prepaid_account).balance == 4 * NANOS_PER_UNIT
    assert left(prepaid_account) == ["4.0"]
    assert expire().booked == []  # twice books once
    assert lots_mismatches() == []


def test_a_lot_spent_before_its_expiry_books_nothing(prepaid_account):
    lifetime(30)
    credit(prepaid_account, "10", days_ago=31)
    debit(prepaid_account, "10")
    run = expire()
    assert run.booked == [] and run.expired == 1
    assert not LedgerEntry.objects.filter(kind="EXPIRY").exists()


def test_a_lot_not_yet_due_is_left_alone(prepaid_account):
    lifetime(30)
    credit(prepaid_account, "10", days_ago=29)
    assert expire().booked == []
    assert left(prepaid_account) == ["10.0"]


def test_as_of_books_only_what_was_due_then(prepaid_account):
    lifetime(30)
    credit(prepaid_account, "10", days_ago=40)  # due 10 days ago
    credit(prepaid_account, "3", days_ago=25)  # due in 5 days
    run = expire(days_from_now=-5)
    assert [e.amount for e in run.booked] == [-10 * NANOS_PER_UNIT]
    assert left(prepaid_account) == ["3.0"]


def test_a_negative_balance_has_nothing_to_expire(prepaid_account):
    lifetime(30)
    credit(prepaid_account, "5", days_ago=40)
    move(prepaid_account, "-8", "USAGE", days_ago=35)
    assert expire().booked == []
    assert wallet(prepaid_account).balance == -3 * NANOS_PER_UNIT


def test_expire_credits_command_books_once_and_says_so(prepaid_account, capsys):
    lifetime(30)
    credit(prepaid_account, "10", days_ago=31)
    call_command("expire_credits")
    call_command("expire_credits")
    out = capsys.readouterr().out.splitlines()
    assert "1 credit lot expired, 1 expiry entry booked" in out[0]
    assert "0 credit lots expired, 0 expiry entries booked" in out[1]
    assert LedgerEntry.objects.filter(kind="EXPIRY").count() == 1


def test_expire_credits_refuses_a_time_in_the_future(prepaid_account):
    with pytest.raises(CommandError, match="in the future: credits expire once they are due"):
        call_command("expire_credits", "--as-of", (timezone.now() + DAY).isoformat())


# --- refunds and disputes take back their own lot -----------------------------------------------


def paid(account, dollars: int, pi: str, *, days_ago: float = 0) -> TopUp:
    top_up = TopUp.objects.create(
        billing_account=account, currency="USD", amount=dollars * NANOS_PER_UNIT
    )
    with transaction.atomic():
        assert top_up_succeed(
            top_up=top_up, payment_intent_id=pi, amount=dollars * 100, currency="usd"
        )
    if days_ago:
        LedgerEntry.objects.filter(transaction_id=pi).update(
            created_at=timezone.now() - days_ago * DAY
        )
    top_up.refresh_from_db()
    return top_up


def test_a_refund_takes_back_its_own_lot_not_the_first_to_expire(prepaid_account):
    paid(prepaid_account, 10, "pi_old", days_ago=100)
    newer = paid(prepaid_account, 20, "pi_new")
    with transaction.atomic():
        top_up_refund(top_up=newer, charge_id="ch_new", amount_refunded=1500, currency="usd")
    assert left(prepaid_account) == ["10.0", "5.0"]
    assert LedgerEntry.objects.get(kind="REFUND").lot_id is not None


def test_a_refund_larger_than_its_partly_spent_lot_takes_the_rest_first_to_expire(prepaid_account):
    older = paid(prepaid_account, 10, "pi_old", days_ago=100)
    paid(prepaid_account, 20, "pi_new")
    debit(prepaid_account, "8")  # from the older lot: 2 left there
    with transaction.atomic():
        top_up_refund(top_up=older, charge_id="ch_old", amount_refunded=1000, currency="usd")
    assert left(prepaid_account) == ["12.0"]  # 2 from its own lot, 8 from the other
    assert lots_mismatches() == []


def test_the_refund_of_an_expired_lot_takes_from_the_others_and_may_leave_a_debt(prepaid_account):
    lifetime(30)
    old = paid(prepaid_account, 10, "pi_old", days_ago=40)
    paid(prepaid_account, 4, "pi_new")
    expire()
    assert left(prepaid_account) == ["4.0"]
    with transaction.atomic():  # the admin refunds the expired payment at Stripe anyway
        top_up_refund(top_up=old, charge_id="ch_old", amount_refunded=1000, currency="usd")
    assert wallet(prepaid_account).balance == -6 * NANOS_PER_UNIT
    assert left(prepaid_account) == []
    assert lots_mismatches() == []


def test_a_won_dispute_gives_back_to_its_lot(prepaid_account):
    older = paid(prepaid_account, 10, "pi_old", days_ago=100)
    paid(prepaid_account, 20, "pi_new")
    for status in ("needs_response", "won"):
        with transaction.atomic():
            top_up_dispute(
                top_up=older, dispute_id="dp_1", amount=1000, currency="usd", status=status
            )
    assert left(prepaid_account) == ["10.0", "20.0"]
    lots = CreditLot.objects.filter(wallet=wallet(prepaid_account))
    assert lots.count() == 2  # given back to the same lot, not a new one


def test_money_given_back_to_an_expired_lot_opens_a_lot_with_its_expiry(prepaid_account):
    lifetime(30)
    older = paid(prepaid_account, 10, "pi_old", days_ago=40)
    with transaction.atomic():
        top_up_dispute(
            top_up=older, dispute_id="dp_1", amount=1000, currency="usd", status="needs_response"
        )
    paid(prepaid_account, 5, "pi_new")
    expire()  # nothing left in the disputed lot: it expires without an entry
    with transaction.atomic():
        top_up_dispute(top_up=older, dispute_id="dp_1", amount=1000, currency="usd", status="won")
    assert left(prepaid_account) == ["10.0", "5.0"]  # given back, expiring as the old lot did
    reopened = CreditLot.objects.get(given_back_to__isnull=False)
    assert reopened.given_back_to.credit_entry.transaction_id == "pi_old"
    assert reopened.expires_at == reopened.given_back_to.expires_at
    run = expire()
    assert [e.transaction_id for e in run.booked] == [f"expiry:{reopened.pk}"]
    assert wallet(prepaid_account).balance == 5 * NANOS_PER_UNIT


# --- the lots add up ------------------------------------------------------------------------------


def test_check_ledger_finds_lots_that_do_not_add_up(prepaid_account, capsys):
    credit(prepaid_account, "10")
    left(prepaid_account)
    CreditLot.objects.update(remaining=9 * NANOS_PER_UNIT)  # a hand-edited row
    with pytest.raises(SystemExit):
        call_command("check_ledger")
    assert "LOTS wallet" in capsys.readouterr().err


def test_reading_the_lots_counts_new_entries_without_writing(prepaid_account):
    credit(prepaid_account, "10")
    left(prepaid_account)
    debit(prepaid_account, "4")
    through = wallet(prepaid_account).lots_counted_through
    book = lots_as_of_now(wallet_id=wallet(prepaid_account).pk)
    assert book.total == 6 * NANOS_PER_UNIT
    assert wallet(prepaid_account).lots_counted_through == through  # nothing written
    assert CreditLot.objects.get().remaining == 10 * NANOS_PER_UNIT


def test_a_won_dispute_of_an_expired_lot_gives_back_to_the_lot_it_took_from(prepaid_account):
    lifetime(30)
    old = paid(prepaid_account, 10, "pi_old", days_ago=40)
    debit(prepaid_account, "10")  # the old lot is spent
    paid(prepaid_account, 20, "pi_new")
    expire()  # the old lot expires, with nothing left
    for status in ("needs_response", "won"):  # takes $10 from the new lot, then gives it back
        with transaction.atomic():
            top_up_dispute(
                top_up=old, dispute_id="dp_1", amount=1000, currency="usd", status=status
            )
    assert left(prepaid_account) == ["20.0"]
    assert expire().booked == []  # nothing of it expires early
    assert wallet(prepaid_account).balance == 20 * NANOS_PER_UNIT


def test_a_failed_refund_gives_back_to_each_lot_what_the_refund_took(prepaid_account):
    older = paid(prepaid_account, 10, "pi_old", days_ago=100)
    paid(prepaid_account, 20, "pi_new")
    debit(prepaid_account, "8")  # 2 left in the older lot
    with transaction.atomic():  # 2 from its own lot, 4 from the newer one
        top_up_refund(top_up=older, charge_id="ch_old", amount_refunded=600, currency="usd")
    assert left(prepaid_account) == ["16.0"]
    with transaction.atomic():
        older.refresh_from_db()
        assert top_up_refund_fail(top_up=older, refund_id="re_1", amount=600, currency="usd")
    assert left(prepaid_account) == ["2.0", "20.0"]  # as before the refund
    assert CreditLot.objects.get(credit_entry__transaction_id="pi_old").taken_back == []
    assert lots_mismatches() == []
