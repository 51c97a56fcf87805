"""The rules a rate plan's prices obey, checked before a plan is saved."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from billing.exceptions import BillingError
from billing.models import RatePlan


@dataclass(frozen=True)
class Band:
    """Calls numbered greater than `start`, up to `end` (0: no end), cost `fee_nanos` each."""

    start: int
    end: int
    fee_nanos: int

    def as_json(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end, "fee_nanos": self.fee_nanos}


def bands_check(pricing_type: str, bands: list[Band]) -> list[Band]:
    """Refuse, saying where, bands that overlap, leave gaps, follow an open-ended one, or cost
    less than nothing. FIXED_PER_UNIT is one band for every call."""
    if not pricing_type:
        if bands:
            raise BillingError("consumptionPricingRates need a consumptionPricingType.")
        return []
    if pricing_type not in RatePlan.ConsumptionPricing.values:
        raise BillingError(
            f"consumptionPricingType {pricing_type!r} is not supported: use FIXED_PER_UNIT or "
            "BANDED."
        )
    if not bands:
        raise BillingError("consumptionPricingRates: give at least one rate.")
    if pricing_type == RatePlan.ConsumptionPricing.FIXED_PER_UNIT and len(bands) != 1:
        raise BillingError("FIXED_PER_UNIT takes exactly one rate: the fee for every call.")
    expected_start = 0
    for n, band in enumerate(bands, 1):
        where = f"consumptionPricingRates[{n}]"
        if band.fee_nanos < 0:
            raise BillingError(f"{where}: a fee cannot be negative.")
        if band.start != expected_start:
            problem = "overlaps the one before" if band.start < expected_start else "leaves a gap"
            raise BillingError(
                f"{where} starts at {band.start} and {problem}: it must start at "
                f"{expected_start}, where the rate before it ends."
            )
        if band.end == 0:
            if n != len(bands):
                raise BillingError(f"{where} has no end (0), so no rate may follow it.")
        elif band.end <= band.start:
            raise BillingError(f"{where} must end after it starts ({band.start}).")
        expected_start = band.end
    if pricing_type == RatePlan.ConsumptionPricing.FIXED_PER_UNIT and bands[0].end != 0:
        raise BillingError("FIXED_PER_UNIT's rate applies to every call: start 0, end 0.")
    return bands


@dataclass(frozen=True)
class ShareRate:
    start: int
    end: int
    share_percentage: Decimal

    def as_json(self) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "share_percentage": format(self.share_percentage.normalize(), "f"),
        }


def share_percentage_parse(value: object, where: str) -> Decimal:
    """A percentage from 0 to 100, exact (decimal text or a JSON number)."""
    try:
        percentage = Decimal(str(value))
    except InvalidOperation:
        raise BillingError(f"{where}: {value!r} is not a percentage.") from None
    if not percentage.is_finite() or not 0 <= percentage <= 100:
        raise BillingError(f"{where}: a revenue share is between 0 and 100 %, not {value}.")
    return percentage


def revenue_share_check(share_type: str, rates: list[ShareRate]) -> list[ShareRate]:
    if not share_type:
        if rates:
            raise BillingError("revenueShareRates need a revenueShareType.")
        return []
    if share_type not in RatePlan.RevenueShare.values:
        raise BillingError(f"revenueShareType {share_type!r} is not supported: use FIXED.")
    if len(rates) != 1:
        raise BillingError("A FIXED revenue share takes exactly one rate.")
    for n, rate in enumerate(rates, 1):  # however the rate was built, not only when parsed
        share_percentage_parse(rate.share_percentage, f"revenueShareRates[{n}].sharePercentage")
    return rates
