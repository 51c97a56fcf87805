"""Rating: what a usage event costs under a rate plan, in exact integers.

An event's calls are numbers first_call..first_call+units-1 of its subscription's month; each
call is priced by the band it falls in (so one event may span a band edge), the sum is times the
multiplier, and the result is rounded down to the nano once, at the end. No float anywhere: the
multiplier is parsed from its decimal text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from billing.models import RatePlan

MAX_MULTIPLIER = Decimal(1_000_000)
MAX_MULTIPLIER_DECIMALS = 9
MAX_MULTIPLIER_TEXT = 40  # the stored column's length


class RatingError(ValueError):
    """Input a rating cannot use (a bad multiplier); the message says why."""


def multiplier_parse(value: object) -> Decimal:
    """`perUnitPriceMultiplier` from its decimal text (a JSON whole number is taken too):
    finite, not negative, at most 9 decimals and at most a million. Never via a float."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise RatingError('perUnitPriceMultiplier must be decimal text, such as "1.5".')
    text = value.strip()
    if not text or len(text) > MAX_MULTIPLIER_TEXT:
        raise RatingError('perUnitPriceMultiplier must be decimal text, such as "1.5".')
    try:
        multiplier = Decimal(text)
    except InvalidOperation:
        raise RatingError(f"perUnitPriceMultiplier {text!r} is not a decimal number.") from None
    if not multiplier.is_finite():
        raise RatingError("perUnitPriceMultiplier must be a finite number.")
    if multiplier < 0:
        raise RatingError("perUnitPriceMultiplier cannot be negative.")
    if multiplier > MAX_MULTIPLIER:
        raise RatingError(f"perUnitPriceMultiplier is at most {MAX_MULTIPLIER}.")
    exponent = multiplier.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked above
    if -exponent > MAX_MULTIPLIER_DECIMALS and multiplier != multiplier.quantize(
        Decimal(1).scaleb(-MAX_MULTIPLIER_DECIMALS)
    ):
        raise RatingError(
            f"perUnitPriceMultiplier has more than {MAX_MULTIPLIER_DECIMALS} decimals."
        )
    return multiplier


def as_fraction(value: Decimal) -> tuple[int, int]:
    """(numerator, denominator) of a finite, non-negative Decimal, exactly."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int) and sign == 0
    numerator = int("".join(map(str, digits)) or "0")
    if exponent >= 0:
        return numerator * 10**exponent, 1
    return numerator, 10**-exponent


@dataclass(frozen=True)
class BandPart:
    """Calls of one event that fell in one band."""

    band: int  # 1-based, as the plan lists them
    calls: int
    fee_nanos: int


@dataclass(frozen=True)
class Rating:
    charge_nanos: int
    unit_fee_nanos: int  # of the band the event's first call fell in
    band: int  # that band, 1-based (0: the plan has no consumption pricing)
    parts: tuple[BandPart, ...]
    multiplier: Decimal


@dataclass(frozen=True)
class Tariff:
    """A plan's bands as rating reads them, parsed once (a batch rates a thousand events with
    a few plans): (start, end, fee) in integers, end 0 for the open last band. Calls past a
    closed last band cost its fee: no call is free because a plan stopped counting."""

    bands: tuple[tuple[int, int, int], ...]

    @classmethod
    def of(cls, bands: Sequence[dict[str, Any]]) -> Tariff:
        count = len(bands)
        return cls(
            tuple(
                (int(b["start"]), int(b["end"]) if n < count else 0, int(b["fee_nanos"]))
                for n, b in enumerate(bands, 1)
            )
        )

    @property
    def highest_fee(self) -> int:
        return max((fee for _, _, fee in self.bands), default=0)

    def rate(
        self, first_call: int, units: int, multiplier: Decimal, fraction: tuple[int, int]
    ) -> Rating:
        """Price calls first_call..first_call+units-1 (numbered from 1 in the month), each by
        its band, times the multiplier (`fraction` is it, exactly), rounded down once."""
        if not self.bands:
            self._check(first_call, units)
            return Rating(0, 0, 0, (), multiplier)
        parts, first_band, first_fee = self._parts(first_call, units)
        total_fees = sum(part.calls * part.fee_nanos for part in parts)
        return Rating(
            charge_nanos=total_fees * fraction[0] // fraction[1],
            unit_fee_nanos=first_fee,
            band=first_band,
            parts=tuple(parts),
            multiplier=multiplier,
        )

    def price(self, first_call: int, units: int, fraction: tuple[int, int]) -> tuple[int, int]:
        """(charge, unit fee) as `rate` gives them; for one band (FIXED_PER_UNIT, the common
        case) without walking the bands."""
        self._check(first_call, units)
        if not self.bands:
            return 0, 0
        if len(self.bands) == 1 and self.bands[0][0] == 0:  # every call in one band
            fee = self.bands[0][2]
            return fee * units * fraction[0] // fraction[1], fee
        parts, _, first_fee = self._parts(first_call, units)
        total_fees = sum(part.calls * part.fee_nanos for part in parts)
        return total_fees * fraction[0] // fraction[1], first_fee

    @staticmethod
    def _check(first_call: int, units: int) -> None:
        if first_call < 1 or units < 1:
            raise RatingError("Calls are numbered from 1 and an event has at least one.")

    def _parts(self, first_call: int, units: int) -> tuple[list[BandPart], int, int]:
        """The calls' parts by band, and the band and fee of the first call."""
        self._check(first_call, units)
        last_call = first_call + units - 1
        parts: list[BandPart] = []
        first_band, first_fee = len(self.bands), self.bands[-1][2]
        for n, (start, end, fee) in enumerate(self.bands, 1):
            # This band holds calls start+1..end (or every later one when end is 0).
            low = max(first_call, start + 1)
            high = last_call if end == 0 else min(last_call, end)
            if low > high:
                continue
            if low == first_call:
                first_band, first_fee = n, fee
            parts.append(BandPart(band=n, calls=high - low + 1, fee_nanos=fee))
        return parts, first_band, first_fee

    def most(self, units: int, fraction: tuple[int, int]) -> int:
        """The most `units` calls could cost, whatever their numbers: to refuse an absurd
        event before it is counted."""
        return self.highest_fee * units * fraction[0] // fraction[1]


def tariff_of(plan: RatePlan) -> Tariff:
    """The plan's tariff: no bands without consumption pricing; a FIXED_PER_UNIT plan has its
    one band for every call."""
    if not plan.consumption_pricing_type:
        return Tariff(())
    return Tariff.of(plan.consumption_rates or [])


def charge(
    bands: Sequence[dict[str, Any]], first_call: int, units: int, multiplier: Decimal
) -> Rating:
    """Price calls first_call..first_call+units-1 under these bands (as a plan stores them)."""
    return Tariff.of(bands).rate(first_call, units, multiplier, as_fraction(multiplier))


def revenue_share(plan: RatePlan, charge_nanos: int) -> int:
    """The developer's share of a charge under the plan's FIXED revenue share: the charge times
    the percentage over 100, rounded down to the nano; 0 without a revenue share."""
    numerator, denominator = revenue_share_fraction(plan)
    return charge_nanos * numerator // denominator


def revenue_share_fraction(plan: RatePlan) -> tuple[int, int]:
    """The developer's share of a charge, exactly: (0, 1) without a revenue share."""
    if not plan.revenue_share_type or not plan.revenue_share_rates:
        return 0, 1
    percentage = Decimal(str(plan.revenue_share_rates[0]["share_percentage"]))
    numerator, denominator = as_fraction(percentage)
    return numerator, 100 * denominator
