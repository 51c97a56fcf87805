"""Apigee's Money JSON and its sign rules (seed 004), and Stripe's minor units, without a
database."""

from __future__ import annotations

import re

import pytest

from billing.money import (
    MoneyError,
    money_from_apigee,
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
