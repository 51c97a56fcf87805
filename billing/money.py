"""Exact money. Every amount is an integer count of nanos (10⁻⁹ of the major unit) beside an
ISO-4217 code; this module is the only place that converts to and from the outside shapes:
Apigee/Google `Money` JSON, Stripe minor units, form input and localised display."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from babel import Locale
from babel.numbers import (
    NumberFormatError,
    format_currency,
    format_decimal,
    get_currency_precision,
    get_currency_symbol,
    list_currencies,
    parse_decimal,
)

NANOS_PER_UNIT = 10**9
MAX_NANO_PART = NANOS_PER_UNIT - 1
# One billion major units: far above any wallet, far below BIGINT's 9.2e18 nanos, so sums of a
# few amounts can never overflow the column.
MAX_AMOUNT_NANOS = 10**18

# Stripe's own lists (not ISO's): amounts in these currencies are sent without minor units,
# or with three decimals. https://docs.stripe.com/currencies#zero-decimal
STRIPE_ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
STRIPE_THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])
# Stripe's rules for charges (https://docs.stripe.com/currencies, three-decimal currencies and
# special cases): three-decimal amounts must end in 0 for Stripe's card partners (KWD 5.120, not
# 5.123); ISK is zero-decimal but still sent with two decimals, which must be 00. HUF's and
# TWD's whole-unit rules are for payouts only, so charges keep two decimals.
STRIPE_WHOLE_UNITS_ONLY = frozenset(["ISK"])
# Stripe's smallest charge, in minor units, where its table names one
# (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts): below it Stripe refuses
# the payment page and the charge with amount_too_small. A charge in another currency must be
# worth the settlement currency's minimum at the day's rate, which only Stripe knows.
STRIPE_MINIMUM_CHARGE = {
    "USD": 50,
    "AED": 200,
    "AUD": 50,
    "BGN": 100,
    "BRL": 50,
    "CAD": 50,
    "CHF": 50,
    "CZK": 1500,
    "DKK": 250,
    "EUR": 50,
    "GBP": 30,
    "HKD": 400,
    "HUF": 17500,
    "INR": 50,
    "JPY": 50,
    "MXN": 1000,
    "MYR": 200,
    "NOK": 300,
    "NZD": 50,
    "PLN": 200,
    "RON": 200,
    "SEK": 300,
    "SGD": 50,
}
_NOT_CURRENCIES = frozenset({"XXX", "XTS"})
_WHOLE_NUMBER_TEXT = re.compile(r"[+-]?[0-9]+")
_KNOWN = frozenset(list_currencies()) - _NOT_CURRENCIES

# What people type: the portal is in English, so amounts are read as en_US writes them.
INPUT_LOCALE = "en_US"
TOO_LARGE = "The amount is too large."
# The text is cut into sign, symbol, number, exponent and symbol, each then checked on its own.
# Possessive quantifiers keep the match linear however long the text (backtracking is not).
_INPUT_PARTS = re.compile(
    r"(?P<sign>[+-]?+)\s*+(?P<before>[^\s0-9.,+-]++)?\s*+(?P<sign2>[+-]?+)"
    r"(?P<number>[0-9.,]++)(?P<exponent>[eE][+-]?+[0-9]++)?\s*+(?P<after>[^\s0-9.,]++)?"
)
_PLAIN_NUMBER = re.compile(r"(?=[.,]*+[0-9])[0-9,]*+(?:\.[0-9]*+)?")
_SPACE_GROUPED = re.compile(r"[+-]?+[0-9]{1,3}(?:[ \u00a0\u202f][0-9]{3})++(?:\.[0-9]++)?")
_DOT_GROUPED = re.compile(r"[+-]?+[0-9]{1,3}(?:\.[0-9]{3})++(?:,[0-9]++)?")
_INVISIBLE = frozenset({"Cc", "Cf", "Co", "Cs", "Cn"})
# Past ten digits before the point an amount is over MAX_AMOUNT_NANOS: refused before any
# conversion of the digits.
_MAX_WHOLE_DIGITS = len(str(MAX_AMOUNT_NANOS // NANOS_PER_UNIT))
_SYMBOLS = {
    symbol: code
    for code, symbol in Locale.parse(INPUT_LOCALE).currency_symbols.items()
    if code in _KNOWN
}


class MoneyError(ValueError):
    """Input that is not a valid amount; the message says which field and why."""


class MoneyPrecisionError(MoneyError):
    """More decimals than allowed. `understood` is the amount as typed, where nanos hold it."""

    def __init__(self, message: str, understood: Money | None) -> None:
        super().__init__(message)
        self.understood = understood


@dataclass(frozen=True, slots=True)
class Money:
    nanos: int
    currency: str

    def __post_init__(self) -> None:
        currency_validate(self.currency)
        if isinstance(self.nanos, bool) or not isinstance(self.nanos, int):
            raise MoneyError("An amount must be a whole number of nanos.")
        if abs(self.nanos) > MAX_AMOUNT_NANOS:
            raise MoneyError(
                f"The amount is too large: at most {MAX_AMOUNT_NANOS // NANOS_PER_UNIT:,} "
                f"{self.currency} either way."
            )

    def __neg__(self) -> Money:
        return Money(-self.nanos, self.currency)

    @property
    def decimal(self) -> Decimal:
        return Decimal(self.nanos).scaleb(-9)

    @property
    def input_text(self) -> str:
        """For a form field: "300", "12.5" (never "3E+2")."""
        return format(self.decimal.normalize(), "f")

    def __str__(self) -> str:
        return money_format(self)


class MoneyProperty:
    """A model attribute giving an integer nanos field and the row's currency as Money (None
    where the field is null), in the spirit of saleor's composite MoneyField: call sites read
    `top_up.money` instead of wrapping `Money(top_up.amount, top_up.currency)`. `currency` may
    be a dotted path for rows whose currency lives on a parent, e.g. "wallet.currency"."""

    def __init__(self, nanos_field: str, currency: str = "currency") -> None:
        self.nanos_field = nanos_field
        self.currency_path = currency.split(".")

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        nanos = getattr(instance, self.nanos_field)
        if nanos is None:
            return None
        currency: Any = instance
        for part in self.currency_path:
            currency = getattr(currency, part)
        return Money(nanos, currency)


def currency_validate(code: object) -> str:
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not code.isupper():
        raise MoneyError(
            f"currencyCode must be a three-letter ISO 4217 code such as USD, not {code!r}."
        )
    if code not in _KNOWN:
        raise MoneyError(f"currencyCode {code!r} is not a known ISO 4217 currency.")
    return code


def _whole_number(value: object, field: str) -> int:
    """Google's int64 JSON: a number or a string of digits, never a fraction or a boolean."""
    if isinstance(value, bool):
        raise MoneyError(f"{field} must be a whole number, not {_short(value)}.")
    if isinstance(value, int):
        return value
    # ASCII digits only: str.isdigit() would let "²" through.
    if isinstance(value, str) and _WHOLE_NUMBER_TEXT.fullmatch(value.strip()):
        text = value.strip()
        sign = text[0] if text[0] in "+-" else ""
        digits = text.lstrip("+-").lstrip("0") or "0"  # "0150" is 150, as in Google's JSON
        if len(digits) > 19:
            # Past int64, and far past any amount; not turned into an int (5,000 digits are slow).
            raise MoneyError(
                f"{field} is too large: amounts are at most "
                f"{MAX_AMOUNT_NANOS // NANOS_PER_UNIT:,} units either way."
            )
        return int(sign + digits)
    raise MoneyError(
        f"{field} must be a whole number (as a string or a number), not {_short(value)}."
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def money_from_apigee(data: Any, field: str = "amount") -> Money:
    """Parse `{"currencyCode", "units", "nanos"}` (units and nanos optional, default 0).

    Sign rule: units and nanos carry the same sign, as in Google's Money, except that seed 004's
    own example sends `units: "-50", nanos: "100000000"` for -50.1, so a positive nanos with
    negative units takes the units' sign. Negative nanos with positive units is refused.
    """
    if not isinstance(data, dict):
        raise MoneyError(f"{field} must be an object with currencyCode, units and nanos.")
    currency = currency_validate(data.get("currencyCode"))
    raw_units = data.get("units", 0)
    units = _whole_number(raw_units, f"{field}.units")
    nanos = _whole_number(data.get("nanos", 0), f"{field}.nanos")
    if abs(nanos) > MAX_NANO_PART:
        raise MoneyError(f"{field}.nanos must be between -999999999 and 999999999.")
    if units > 0 and nanos < 0:
        raise MoneyError(f"{field}: units and nanos must not have opposite signs.")
    # "-0" units with positive nanos is -0.5 by the rule above; int("-0") alone would lose it.
    negative_zero = isinstance(raw_units, str) and raw_units.strip().startswith("-")
    negative = units < 0 or nanos < 0 or negative_zero
    total = abs(units) * NANOS_PER_UNIT + abs(nanos)
    return Money(-total if negative else total, currency)


def money_to_apigee(money: Money) -> dict[str, Any]:
    """Google's Money JSON: units as a string, nanos as a number with the same sign, and nanos
    left out when zero (proto3 omits defaults, as in seed 004's adjust response)."""
    sign = -1 if money.nanos < 0 else 1
    units, nanos = divmod(abs(money.nanos), NANOS_PER_UNIT)
    out: dict[str, Any] = {"currencyCode": money.currency, "units": str(sign * units)}
    if nanos:
        out["nanos"] = sign * nanos
    return out


def stripe_exponent(currency: str) -> int:
    if currency in STRIPE_ZERO_DECIMAL:
        return 0
    if currency in STRIPE_THREE_DECIMAL:
        return 3
    return 2


def stripe_charge_step(currency: str) -> int:
    """The step, in nanos, of the amounts Stripe can charge: USD 0.01, JPY 1, KWD 0.010, ISK 1."""
    if currency in STRIPE_ZERO_DECIMAL or currency in STRIPE_WHOLE_UNITS_ONLY:
        return NANOS_PER_UNIT
    if currency in STRIPE_THREE_DECIMAL:
        return NANOS_PER_UNIT // 1000 * 10
    return NANOS_PER_UNIT // 100


def stripe_currency_check(currency: str) -> str:
    """Refuse a currency whose minor unit Stripe cannot express (LYD's 3 decimals, CLF's 4)."""
    decimals = currency_decimals(currency_validate(currency))
    if decimals > 3:
        raise MoneyError(
            f"Stripe does not take payments in {currency}: its amounts have {decimals} decimal "
            "places, and Stripe takes at most 3."
        )
    if decimals > stripe_exponent(currency):
        three = ", ".join(sorted(STRIPE_THREE_DECIMAL))
        raise MoneyError(
            f"Stripe does not take payments in {currency}: its amounts have {decimals} decimal "
            f"places, and the only three-decimal currencies Stripe takes are {three}."
        )
    return currency


def stripe_amount_check(money: Money, *, minimum: bool = True) -> Money:
    """Refuse an amount Stripe would reject: a currency it cannot take, a finer step, or (with
    `minimum`) less than Stripe's minimum charge."""
    step = stripe_charge_step(stripe_currency_check(money.currency))
    if money.nanos % step:
        places = stripe_exponent(money.currency) if step < NANOS_PER_UNIT else 0
        step_text = f"{Decimal(step).scaleb(-9):.{places}f}"
        raise MoneyError(
            f"{money.currency} amounts must be a multiple of {step_text}: {money} cannot be "
            "charged exactly."
        )
    smallest = stripe_minimum_charge(money.currency) if minimum else None
    if smallest is not None and money.nanos < smallest.nanos:
        raise MoneyError(
            f"Stripe charges at least {smallest} in {money.currency}: {money} cannot be charged."
        )
    return money


def stripe_minimum_charge(currency: str) -> Money | None:
    """The smallest amount Stripe charges in this currency, where Stripe's table names one."""
    minor = STRIPE_MINIMUM_CHARGE.get(currency)
    return None if minor is None else money_from_stripe(minor, currency)


def money_to_stripe(money: Money) -> int:
    """Stripe's integer amount in the currency's smallest unit (JPY 500 → 500, USD 5 → 500)."""
    stripe_amount_check(money)
    return money.nanos // (NANOS_PER_UNIT // 10 ** stripe_exponent(money.currency))


def stripe_round_up(nanos: int, currency: str) -> int:
    """The smallest amount Stripe can charge that is not less than `nanos` (USD 30.0013 → 30.01,
    KWD 5.123 → 5.130)."""
    step = stripe_charge_step(currency)
    return -(-nanos // step) * step


def money_from_stripe(amount: int, currency: str) -> Money:
    code = currency_validate(currency.upper())
    return Money(int(amount) * (NANOS_PER_UNIT // 10 ** stripe_exponent(code)), code)


def money_parse(text: str, currency: str, *, max_decimals: int | None = None) -> Money:
    """An amount written in code or a test, such as "20" or "30.0013": the grammar of
    `money_from_input`, to the nano (or to `max_decimals`). What people type goes through
    `money_from_input`, which allows only the currency's decimals."""
    currency_validate(currency)
    allowed = 9 if max_decimals is None else max_decimals
    return Money(_amount_nanos(text, decimals=allowed, currency=currency), currency)


def money_from_input(text: str, currency: str) -> Money:
    """An amount a person typed, in major units, read strictly as en_US writes it: "1,250.75",
    "20", "20.", ".5", "-5" (the form decides about the sign), with the field's own symbol or
    code before or after ("$20", "20 USD"). Refused with a message saying why, and what the
    text could mean where that is clear: wrong grouping ("20,50": 20.50 or 2,050?), more
    decimals than the currency has, exponents ("1e3"), NaN and Infinity, digits other than
    0-9, spaces or dots between thousands, invisible characters, another currency's symbol,
    more than MAX_AMOUNT_NANOS. Only MoneyError is raised, whatever the text."""
    currency_validate(currency)
    decimals = currency_decimals(currency)
    return Money(_amount_nanos(text, decimals=decimals, currency=currency), currency)


def amount_from_input(text: str, *, decimals: int) -> int:
    """Nanos of an amount a person typed that applies in every currency (the prepaid grace):
    the rules of `money_from_input`, without a currency symbol."""
    return _amount_nanos(text, decimals=decimals, currency=None)


def currency_symbol(currency: str) -> str:
    """The symbol amounts are shown with (money_format): "$" for USD, "€", "CA$", "KWD"."""
    return get_currency_symbol(currency_validate(currency), locale=INPUT_LOCALE)


def _amount_nanos(text: object, *, decimals: int, currency: str | None) -> int:
    if not isinstance(text, str):
        raise MoneyError(f"An amount must be text, not {_short(text)}.")
    text = text.strip()
    if not text:
        raise MoneyError("Enter an amount.")
    if not text.isprintable():
        _invisible_refuse(text)
    parts = _INPUT_PARTS.fullmatch(text)
    if parts is None or (parts["before"] and parts["after"]) or (parts["sign"] and parts["sign2"]):
        raise MoneyError(_not_an_amount(text, decimals, currency))
    negative = "-" in (parts["sign"], parts["sign2"])
    symbol = parts["before"] or parts["after"]
    if symbol:
        _symbol_check(text, symbol, decimals, currency)
    number = parts["number"]
    if parts["exponent"]:
        _exponent_refuse(text, number, parts["exponent"], negative)
    if not _PLAIN_NUMBER.fullmatch(number):
        raise MoneyError(_not_an_amount(text, decimals, currency))
    whole, _, fraction = number.partition(".")
    if len(whole.replace(",", "").lstrip("0")) > _MAX_WHOLE_DIGITS:
        raise MoneyError(TOO_LARGE)
    if len(fraction) > 9:  # finer than a nano: not read at all
        raise MoneyPrecisionError(_too_many_decimals(decimals, currency), None)
    value = _grouping_check(text, number, negative, decimals, currency)
    if value > MAX_AMOUNT_NANOS // NANOS_PER_UNIT:
        raise MoneyError(TOO_LARGE)
    nanos = int(value.scaleb(9))  # at most 10 + 9 digits: exact
    if negative:
        nanos = -nanos
    if len(fraction) > decimals:
        understood = None if currency is None else Money(nanos, currency)
        raise MoneyPrecisionError(_too_many_decimals(decimals, currency), understood)
    return nanos


def _grouping_check(
    text: str, number: str, negative: bool, decimals: int, currency: str | None
) -> Decimal:
    """Babel's strict reading: commas only between groups of three before the point. A wrong
    one is refused with what the text could mean, the decimal reading first."""
    try:
        return parse_decimal(number, locale=INPUT_LOCALE, strict=True)
    except NumberFormatError as exc:
        sign = "-" if negative else ""
        readings = [sign + s for s in reversed(exc.suggestions or [])]
        raise MoneyError(_did_you_mean(text, readings, decimals, currency)) from None


def _did_you_mean(
    text: str, readings: list[str], decimals: int, currency: str | None, how: str = ""
) -> str:
    """The message for text that reads as an amount written another way: the readings a
    field with `decimals` would take, each written as the currency's amounts are (20.50)."""
    usual = decimals if currency is None else min(decimals, currency_decimals(currency))
    kept: list[str] = []
    for reading in readings:
        value = Decimal(reading.replace(",", "")).normalize()
        places = max(0, -value.as_tuple().exponent)  # type: ignore[operator]
        if places <= decimals:
            written = _decimal_text(value, max(places, usual) if places else 0)
            if written not in kept:
                kept.append(written)
    if not kept:
        return _use_digits(text, decimals)
    return f"“{_shown(text)}” is not an amount: {how}did you mean {' or '.join(kept)}?"


def _not_an_amount(text: str, decimals: int, currency: str | None) -> str:
    """The message for text that is not an amount as written, with the likely reading where
    one is clear: digits of another script, spaces or dots between thousands."""
    if any(ch.isdecimal() and not ch.isascii() for ch in text):
        latin = "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)
        readings = _readings(latin, decimals, currency)
        if not readings:
            return f"“{_shown(text)}” is not an amount: type it with the digits 0 to 9."
        how = "type it with the digits 0 to 9; "
        return _did_you_mean(text, readings, decimals, currency, how)
    if _SPACE_GROUPED.fullmatch(text):
        grouped = re.sub(r"[ \u00a0\u202f]", ",", text)
        return _did_you_mean(text, _readings(grouped, decimals, currency), decimals, currency)
    if _DOT_GROUPED.fullmatch(text):  # 1.250,75 as much of Europe writes it
        swapped = text.replace(".", "_").replace(",", ".").replace("_", ",")
        return _did_you_mean(text, _readings(swapped, decimals, currency), decimals, currency)
    return _use_digits(text, decimals)


def _readings(text: str, decimals: int, currency: str | None) -> list[str]:
    """`text`, a rewriting of what was typed, as a reading if it is a valid amount."""
    try:
        nanos = _amount_nanos(text, decimals=decimals, currency=currency)
    except MoneyError:
        return []
    return [str(Decimal(nanos).scaleb(-9).normalize())]


def _use_digits(text: str, decimals: int) -> str:
    example = "20 or 20.50" if decimals else "20 or 2,000"
    return f"“{_shown(text)}” is not an amount: use digits, e.g. {example}."


def _symbol_check(text: str, symbol: str, decimals: int, currency: str | None) -> None:
    if currency:
        own = currency_symbol(currency)
        # "$" is how people write CA$, A$ or MX$ too; the field shows which dollar it takes.
        if symbol.upper() == currency or symbol == own or (symbol == "$" and own.endswith("$")):
            return
    other = symbol.upper() if symbol.upper() in _KNOWN else _SYMBOLS.get(symbol)
    if currency and other:
        raise MoneyError(f"“{_shown(text)}” is in {other}, but this amount is in {currency}.")
    raise MoneyError(_use_digits(text, decimals))


def _exponent_refuse(text: str, number: str, exponent: str, negative: bool) -> None:
    """People write amounts out: "1e3" is refused, as too large above the largest amount, else
    with the amount written out where that is short."""
    mantissa = number.replace(",", "")
    if not _PLAIN_NUMBER.fullmatch(mantissa):
        raise MoneyError(f"“{_shown(text)}” is not an amount: write it out in digits.")
    value = Decimal(mantissa)
    power = exponent[1:]
    # Past four digits the exponent is not turned into an int (thousands of digits are slow).
    if len(power.lstrip("+-").lstrip("0")) > 4:
        if value and not power.startswith("-"):
            raise MoneyError(TOO_LARGE)
        raise MoneyError(f"“{_shown(text)}” is not an amount: write it out in digits.")
    written = value.scaleb(int(power))
    if written > MAX_AMOUNT_NANOS // NANOS_PER_UNIT:
        raise MoneyError(TOO_LARGE)
    places = max(0, -written.normalize().as_tuple().exponent)  # type: ignore[operator]
    if places > 9 or len(mantissa) > 20:
        raise MoneyError(f"“{_shown(text)}” is not an amount: write it out in digits.")
    raise MoneyError(
        f"“{_shown(text)}” is not an amount: write it out in digits, e.g. "
        f"{_decimal_text(-written if negative else written, places)}."
    )


def _invisible_refuse(text: str) -> None:
    """Control and format characters (NUL, zero-width spaces, right-to-left marks) are not
    seen, and a right-to-left override shows digits in another order: never guessed at."""
    for ch in text:
        if unicodedata.category(ch) in _INVISIBLE:
            name = unicodedata.name(ch, "")
            what = f"U+{ord(ch):04X}{' ' + name if name else ''}"
            raise MoneyError(
                f"The amount contains an invisible character ({what}), perhaps copied with it: "
                "type the amount again."
            )


def _too_many_decimals(decimals: int, currency: str | None) -> str:
    if currency is None:
        return f"Amounts here take at most {decimals} decimal places."
    if decimals == 0:
        return f"{currency} amounts are whole numbers, without decimals."
    return f"{currency} amounts take at most {decimals} decimal places."


def _decimal_text(value: Decimal, decimals: int) -> str:
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return format_decimal(value, format=pattern, locale=INPUT_LOCALE)


def _shown(text: str) -> str:
    """What the person typed, cut short, for a message."""
    return text if len(text) <= 24 else text[:20] + "…"


def money_format(money: Money, locale: str = "en_US") -> str:
    """Localised display with the currency's usual decimals, more only when nanos need them."""
    value = money_decimal(money)
    return format_currency(value, money.currency, locale=locale, decimal_quantization=False)


def money_decimal(money: Money) -> Decimal:
    """The amount with the currency's usual decimals, more only when nanos need them: 12.50,
    0.000000001, 5 (JPY)."""
    precision = get_currency_precision(money.currency)
    value = money.decimal.quantize(Decimal(1).scaleb(-9)).normalize()
    if -value.as_tuple().exponent < precision:  # type: ignore[operator]
        value = value.quantize(Decimal(1).scaleb(-precision))
    return value


def currency_decimals(currency: str) -> int:
    """How many decimals people use for this currency (USD 2, JPY 0)."""
    return get_currency_precision(currency)
