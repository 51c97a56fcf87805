from __future__ import annotations

from django import template

from billing.money import Money, money_format

register = template.Library()


@register.filter
def money(nanos: int, currency: str) -> str:
    """`{{ wallet.balance|money:wallet.currency }}` → "$150.50", "-¥300"."""
    return money_format(Money(int(nanos), currency))


@register.filter
def signed_money(nanos: int, currency: str) -> str:
    """Ledger amounts with an explicit sign: "+$20.00", "-$1.25"."""
    text = money_format(Money(int(nanos), currency))
    return text if nanos < 0 else f"+{text}"
