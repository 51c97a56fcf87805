"""The rating table: each call priced by its band, times the multiplier, in exact integers,
rounded down to the nano once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.catalog.rates import Band
from billing.models import RatePlan
from billing.usage.rating import (
    RatingError,
    Tariff,
    as_fraction,
    charge,
    multiplier_parse,
    revenue_share,
)
from tests.conftest import NANOS_PER_UNIT

CENT = NANOS_PER_UNIT // 100
# Calls 1-100 at 10 cents, 101-1000 at 5 cents, later ones at 1 cent.
BANDED = [
    Band(0, 100, 10 * CENT).as_json(),
    Band(100, 1000, 5 * CENT).as_json(),
    Band(1000, 0, CENT).as_json(),
]
FIXED = [Band(0, 0, 3 * CENT).as_json()]
ONE = Decimal(1)


def test_fixed_per_unit_prices_every_call_alike():
    assert charge(FIXED, 1, 1, ONE).charge_nanos == 3 * CENT
    rating = charge(FIXED, 5_000_000, 7, ONE)
    assert (rating.charge_nanos, rating.unit_fee_nanos, rating.band) == (21 * CENT, 3 * CENT, 1)


@pytest.mark.parametrize(
    ("first_call", "units", "expected_cents", "band"),
    [
        (1, 1, 10, 1),
        (100, 1, 10, 1),  # the last call of the first band
        (101, 1, 5, 2),  # the first of the second
        (99, 4, 10 + 10 + 5 + 5, 1),  # across the edge within one event
        (95, 1000, 6 * 10 + 900 * 5 + 94 * 1, 1),  # across two edges
        (1001, 3, 3, 3),
    ],
)
def test_banded_prices_each_call_by_its_band(first_call, units, expected_cents, band):
    rating = charge(BANDED, first_call, units, ONE)
    assert rating.charge_nanos == expected_cents * CENT
    assert rating.band == band


def test_banded_events_of_one_month_add_up_to_the_price_of_all_the_calls():
    # Split anyhow (one batch or many), the calls numbered 1..1100 cost the same.
    whole = charge(BANDED, 1, 1100, ONE).charge_nanos
    assert whole == (100 * 10 + 900 * 5 + 100 * 1) * CENT
    pieces = [(1, 98), (99, 5), (104, 897), (1001, 1), (1002, 99)]
    assert sum(charge(BANDED, f, u, ONE).charge_nanos for f, u in pieces) == whole


def test_calls_past_a_closed_last_band_cost_its_fee():
    closed = [Band(0, 10, 2 * CENT).as_json(), Band(10, 20, CENT).as_json()]
    assert charge(closed, 19, 4, ONE).charge_nanos == 4 * CENT


@pytest.mark.parametrize(
    ("text", "units", "expected_nanos"),
    [
        ("0.001", 1, 3 * CENT // 1000),  # 30,000 nanos
        ("1.5", 1, 4_500_000 * 10),  # 4.5 cents
        ("1.5", 3, 13_500_000 * 10),
        ("0", 5, 0),
        ("2", 2, 12 * CENT),
        # A third of a nano per call: rounded down once, at the end, not per call.
        ("0.000000001", 1_000_000_000, 3 * CENT),
    ],
)
def test_the_multiplier_is_exact(text, units, expected_nanos):
    assert charge(FIXED, 1, units, multiplier_parse(text)).charge_nanos == expected_nanos


def test_rounding_down_happens_once_at_the_end():
    fee_of_one_nano = [Band(0, 0, 1).as_json()]
    # 3 calls x 1 nano x 0.5 = 1.5 nanos: 1 nano, where rounding each call would give 0.
    assert charge(fee_of_one_nano, 1, 3, multiplier_parse("0.5")).charge_nanos == 1


def test_jpy_has_no_minor_unit_but_is_exact_to_the_nano():
    yen = [Band(0, 0, 3 * NANOS_PER_UNIT).as_json()]  # 3 yen a call
    assert charge(yen, 1, 10, multiplier_parse("0.333")).charge_nanos == 9_990_000_000
    assert charge(yen, 1, 1, multiplier_parse("0.000000001")).charge_nanos == 3


def test_no_consumption_pricing_costs_nothing():
    assert charge([], 1, 10, ONE).charge_nanos == 0


@pytest.mark.parametrize(
    "value",
    ["", "abc", "NaN", "Infinity", "-1", "-0.5", "1.0000000001", "1e7", "1" * 41, 1.5, True,
     None, "1,5"],
)  # fmt: skip
def test_a_bad_multiplier_is_refused(value):
    with pytest.raises(RatingError):
        multiplier_parse(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", Decimal(1)), (" 1.5 ", Decimal("1.5")), (2, Decimal(2)), ("0.123456789", None),
     ("1.500000000000", Decimal("1.5"))],
)  # fmt: skip
def test_good_multipliers(value, expected):
    assert multiplier_parse(value) == (expected if expected is not None else Decimal(value))


def test_revenue_share_is_rounded_down():
    plan = RatePlan(revenue_share_type="FIXED", revenue_share_rates=[{"share_percentage": "12.5"}])
    assert revenue_share(plan, 1_000_000_007) == 125_000_000  # 125,000,000.875 rounded down
    assert revenue_share(RatePlan(), 1000) == 0


@pytest.mark.parametrize("bands", [FIXED, BANDED, [Band(5, 0, 2 * CENT).as_json()], []])
@pytest.mark.parametrize("multiplier", ["1", "0.001", "1.5", "3"])
def test_the_batch_path_prices_as_the_rating_trace_does(bands, multiplier):
    """usage:batch prices with Tariff.price (no trace); it must agree with the full rating."""
    tariff, value = Tariff.of(bands), Decimal(multiplier)
    for first_call, units in [(1, 1), (5, 1), (6, 3), (99, 4), (95, 1000), (1001, 3), (7, 500)]:
        rating = charge(bands, first_call, units, value)
        price = tariff.price(first_call, units, as_fraction(value))
        assert price == (rating.charge_nanos, rating.unit_fee_nanos)
