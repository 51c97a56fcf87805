"""Apigee's Money JSON and its sign rules (seed 004), Stripe's minor units, and the amounts
people type, without a database."""

from __future__ import annotations

import re
import time

import pytest

from billing.money import (
    MoneyError,
    amount_from_input,
    currency_symbol,
    money_from_apigee,
    money_from_input,
    money_parse,
    money_to_stripe,
    stripe_round_up,
)
from tests.conftest import NANOS_PER_UNIT


@pytest.mark.parametrize(
    "units, nanos, nanos_total",
    [
        ("50", 100_000_000, 50_100_000_000),
        ("-50", -100_000_000, -50_100_000_000),
        ("-50", 100_000_000, -50_100_000_000),  # seed 004's own example for -50.1
        ("0", -500_000_000, -500_000_000),
        ("-0", 500_000_000, -500_000_000),  # int("-0") is 0: the sign is in the text
        (" -0 ", 500_000_000, -500_000_000),
        ("0", 500_000_000, 500_000_000),
        (0, 500_000_000, 500_000_000),
        (-7, 0, -7 * NANOS_PER_UNIT),
    ],
)
def test_units_and_nanos_give_one_signed_amount(units, nanos, nanos_total):
    data = {"currencyCode": "USD", "units": units, "nanos": nanos}
    assert money_from_apigee(data).nanos == nanos_total


def test_positive_units_with_negative_nanos_are_refused():
    with pytest.raises(MoneyError, match="opposite signs"):
        money_from_apigee({"currencyCode": "USD", "units": "1", "nanos": -1})


# ---- Stripe minor units and Stripe's special cases for charges ----


@pytest.mark.parametrize(
    "currency, text, minor",
    [
        ("USD", "5", 500),
        ("JPY", "500", 500),
        ("KWD", "5.12", 5120),  # three decimals, the last one 0
        ("BHD", "1.1", 1100),
        ("ISK", "5", 500),  # zero-decimal, but sent with two decimals that are 00
        ("USD", "0.5", 50),  # Stripe's minimum charges
        ("JPY", "50", 50),
        ("KWD", "0.01", 10),  # no minimum in Stripe's table: Stripe converts and decides
    ],
)
def test_money_to_stripe_gives_stripes_minor_units(currency, text, minor):
    assert money_to_stripe(money_parse(text, currency)) == minor


@pytest.mark.parametrize(
    "currency, text, message",
    [
        ("KWD", "5.123", "KWD amounts must be a multiple of 0.010: KWD5.123 cannot be charged"),
        ("OMR", "0.001", "OMR amounts must be a multiple of 0.010"),
        ("ISK", "5.5", "ISK amounts must be a multiple of 1: ISK5.5 cannot be charged"),
        ("USD", "30.0013", "USD amounts must be a multiple of 0.01: $30.0013 cannot be charged"),
        ("JPY", "0.5", "JPY amounts must be a multiple of 1"),
        ("LYD", "5", "Stripe does not take payments in LYD: its amounts have 3 decimal places"),
        ("CLF", "1", "Stripe does not take payments in CLF: its amounts have 4 decimal places"),
        ("UYW", "1", "Stripe does not take payments in UYW"),
        ("USD", "0.49", "Stripe charges at least $0.50 in USD: $0.49 cannot be charged."),
        ("GBP", "0.29", "Stripe charges at least £0.30 in GBP"),
        ("JPY", "49", "Stripe charges at least ¥50 in JPY"),
        ("HUF", "174", "Stripe charges at least HUF175.00 in HUF"),
    ],
)
def test_money_to_stripe_refuses_what_stripe_would_reject(currency, text, message):
    with pytest.raises(MoneyError, match=re.escape(message)):
        money_to_stripe(money_parse(text, currency))


@pytest.mark.parametrize(
    "currency, text, rounded",
    [
        ("USD", "30.0013", "30.01"),
        ("KWD", "5.123", "5.13"),
        ("KWD", "5.12", "5.12"),
        ("ISK", "30.2", "31"),
        ("JPY", "99.000000001", "100"),
    ],
)
def test_stripe_round_up_gives_the_next_amount_stripe_can_charge(currency, text, rounded):
    nanos = money_parse(text, currency).nanos
    assert stripe_round_up(nanos, currency) == money_parse(rounded, currency).nanos


# ---- amounts people type (issue 13, point 4): the parser's table ----


@pytest.mark.parametrize(
    "text, currency, nanos",
    [
        ("20", "USD", 20 * NANOS_PER_UNIT),
        ("1,250.75", "USD", 1_250_750_000_000),
        ("1,000,000,000", "USD", 10**18),  # the largest amount
        ("  20 ", "USD", 20 * NANOS_PER_UNIT),
        ("20.", "USD", 20 * NANOS_PER_UNIT),
        (".5", "USD", 500_000_000),
        ("20.50", "USD", 20_500_000_000),
        ("0020", "USD", 20 * NANOS_PER_UNIT),
        ("-5", "USD", -5 * NANOS_PER_UNIT),  # the form decides about the sign
        ("+5", "USD", 5 * NANOS_PER_UNIT),
        ("0", "USD", 0),
        ("$20", "USD", 20 * NANOS_PER_UNIT),  # the field's own symbol or code, before or after
        ("-$5", "USD", -5 * NANOS_PER_UNIT),
        ("$ 1,250.75", "USD", 1_250_750_000_000),
        ("USD 20", "USD", 20 * NANOS_PER_UNIT),
        ("20 usd", "USD", 20 * NANOS_PER_UNIT),
        ("€20", "EUR", 20 * NANOS_PER_UNIT),
        ("CA$20", "CAD", 20 * NANOS_PER_UNIT),
        ("$20", "CAD", 20 * NANOS_PER_UNIT),  # the box shows CA$: "$" is that dollar
        ("1,000", "JPY", 1000 * NANOS_PER_UNIT),
        ("¥500", "JPY", 500 * NANOS_PER_UNIT),
        ("1.234", "KWD", 1_234_000_000),  # three decimals (Stripe's step is a form's concern)
    ],
)
def test_amounts_people_type_are_read_as_written(text, currency, nanos):
    assert money_from_input(text, currency).nanos == nanos


@pytest.mark.parametrize(
    "text, currency, message",
    [
        # Grouping is en_US and strict; a wrong comma says what the text could mean.
        ("5,5", "USD", "“5,5” is not an amount: did you mean 5.50 or 55?"),
        ("20,50", "USD", "“20,50” is not an amount: did you mean 20.50 or 2,050?"),
        ("20,50", "JPY", "“20,50” is not an amount: did you mean 2,050?"),  # no 20.50 yen
        ("-20,50", "USD", "did you mean -20.50 or -2,050?"),
        ("1,25,000", "USD", "“1,25,000” is not an amount: did you mean 125,000?"),
        ("1,000,", "USD", "did you mean 1,000?"),
        ("1 000", "USD", "“1 000” is not an amount: did you mean 1,000?"),
        ("1.250,75", "USD", "“1.250,75” is not an amount: did you mean 1,250.75?"),
        ("1.000.000", "USD", "did you mean 1,000,000?"),
        # No more decimals than the currency has.
        ("0.001", "USD", "USD amounts take at most 2 decimal places."),
        ("1.000", "USD", "USD amounts take at most 2 decimal places."),  # 1 or 1,000?
        ("1.5", "JPY", "JPY amounts are whole numbers, without decimals."),
        ("1.2345", "KWD", "KWD amounts take at most 3 decimal places."),
        ("0." + "0" * 10_000 + "1", "USD", "USD amounts take at most 2 decimal places."),
        # No exponents, NaN or infinities; the amount written out where it is short.
        ("1e3", "USD", "“1e3” is not an amount: write it out in digits, e.g. 1,000."),
        ("1.5E2", "USD", "e.g. 150."),
        ("1e400", "USD", "The amount is too large."),
        ("1e999999999", "USD", "The amount is too large."),
        ("1e" + "9" * 5000, "USD", "The amount is too large."),
        ("1e-999999999", "USD", "“1e-999999999” is not an amount: write it out in digits."),
        ("NaN", "USD", "“NaN” is not an amount: use digits, e.g. 20 or 20.50."),
        ("Infinity", "USD", "“Infinity” is not an amount"),
        ("-inf", "USD", "“-inf” is not an amount"),
        ("abc", "USD", "“abc” is not an amount: use digits, e.g. 20 or 20.50."),
        ("abc", "JPY", "“abc” is not an amount: use digits, e.g. 20 or 2,000."),
        ("1_000", "USD", "“1_000” is not an amount"),  # Decimal() would take it
        ("20 dollars", "USD", "“20 dollars” is not an amount"),
        ("$20 USD", "USD", "“$20 USD” is not an amount"),
        # Too large, however long: refused before any conversion.
        ("9" * 400, "USD", "The amount is too large."),
        ("1" * 10_240, "USD", "The amount is too large."),
        ("1,000,000,000.01", "USD", "The amount is too large."),
        ("a" * 10_240, "USD", "“aaaaaaaaaaaaaaaaaaaa…” is not an amount"),
        # Digits of another script, and characters nobody sees, are not guessed at.
        ("١٢٣", "USD", "type it with the digits 0 to 9; did you mean 123?"),
        ("２０", "USD", "type it with the digits 0 to 9; did you mean 20?"),
        ("\u200b20", "USD", "invisible character (U+200B ZERO WIDTH SPACE)"),
        ("\u200f20", "USD", "invisible character (U+200F RIGHT-TO-LEFT MARK)"),
        ("\u202e12", "USD", "invisible character (U+202E RIGHT-TO-LEFT OVERRIDE)"),
        ("\x00", "USD", "invisible character (U+0000)"),
        ("20\x00", "USD", "invisible character (U+0000)"),
        # Another currency's symbol or code is not this amount.
        ("€20", "USD", "“€20” is in EUR, but this amount is in USD."),
        ("20 GBP", "USD", "“20 GBP” is in GBP, but this amount is in USD."),
        ("", "USD", "Enter an amount."),
        ("   ", "USD", "Enter an amount."),
    ],
)
def test_amounts_people_type_are_refused_with_what_was_understood(text, currency, message):
    with pytest.raises(MoneyError, match=re.escape(message)):
        money_from_input(text, currency)


def test_the_longest_refusals_are_quick():
    """Refusals come before any slow conversion: no input takes more than a blink."""
    texts = ["9" * 100_000, "1," * 50_000, "0." + "0" * 100_000, "-" + " " * 100_000 + "x"]
    texts += ["1e" + "9" * 100_000, "1" + "e" * 100_000, "\u200b" * 100_000]
    for text in texts:
        started = time.perf_counter()
        with pytest.raises(MoneyError):
            money_from_input(text, "USD")
        assert time.perf_counter() - started < 0.5, text[:20]


def test_code_and_fixtures_may_write_nanos_with_the_same_grammar():
    assert money_parse("30.0013", "USD").nanos == 30_001_300_000
    with pytest.raises(MoneyError, match="did you mean 20.50 or 2,050"):
        money_parse("20,50", "USD")


def test_the_prepaid_grace_is_one_number_for_every_currency():
    assert amount_from_input("2.50", decimals=2) == 2_500_000_000
    with pytest.raises(MoneyError, match="Amounts here take at most 2 decimal places."):
        amount_from_input("2.505", decimals=2)
    with pytest.raises(MoneyError, match="“\\$5” is not an amount"):
        amount_from_input("$5", decimals=2)  # no currency of its own


@pytest.mark.parametrize(
    "currency, symbol", [("USD", "$"), ("EUR", "€"), ("JPY", "¥"), ("KWD", "KWD")]
)
def test_the_symbol_beside_an_amount_box_is_the_one_amounts_are_shown_with(currency, symbol):
    assert currency_symbol(currency) == symbol
    assert str(money_from_input("1", currency)).startswith(symbol)
