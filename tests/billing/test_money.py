"""Apigee's Money JSON and its sign rules (seed 004), without a database."""

from __future__ import annotations

import pytest

from billing.money import MoneyError, money_from_apigee

UNIT = 10**9


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
        (-7, 0, -7 * UNIT),
    ],
)
def test_units_and_nanos_give_one_signed_amount(units, nanos, nanos_total):
    data = {"currencyCode": "USD", "units": units, "nanos": nanos}
    assert money_from_apigee(data).nanos == nanos_total


def test_positive_units_with_negative_nanos_are_refused():
    with pytest.raises(MoneyError, match="opposite signs"):
        money_from_apigee({"currencyCode": "USD", "units": "1", "nanos": -1})
