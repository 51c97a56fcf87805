"""A developer's money at a glance, for the home page: balances with their warnings,
auto-recharge per currency, and the latest ledger entries."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from billing.billing_accounts.selectors import billing_type_effective
from billing.ledger.selectors import ledger_history
from billing.models import AutoRecharge, BillingAccount, BillingType
from billing.top_ups.selectors import add_credit_rows
from billing.web.auto_recharge_panel import cap_summary, recharge_state, recharge_summary
from billing.web.payment_status import payment_warnings

RECENT_ENTRIES = 5


def account_overview(*, account: BillingAccount) -> dict[str, Any]:
    prepaid = billing_type_effective(account=account) == BillingType.PREPAID
    recharges = [_recharge(recharge) for recharge in _recharges(account)]
    warnings = payment_warnings(account=account, panels=recharges)
    rows = [r for r in add_credit_rows(account=account) if prepaid or r["wallet"]]
    for row in rows:
        row["warnings"] = warnings.get(row["currency"], [])
    return {
        "prepaid": prepaid,
        "rows": rows,
        "recharges": [r for r in recharges if r["recharge"].enabled or r["switched_off"]],
        "entries": list(ledger_history(account=account)[:RECENT_ENTRIES]),
        "has_card": bool(account.card_last4),
    }


def _recharges(account: BillingAccount) -> list[AutoRecharge]:
    return list(AutoRecharge.objects.filter(billing_account=account).order_by("currency"))


def _recharge(recharge: AutoRecharge) -> dict[str, Any]:
    attempts = list(recharge.attempts.all()[:1])
    return {
        "currency": recharge.currency,
        "recharge": recharge,
        "attempts": attempts,
        "state": recharge_state(recharge, attempts),
        "summary": recharge_summary(recharge),
        "cap": cap_summary(recharge, timezone.now()),
        "switched_off": not recharge.enabled and bool(recharge.disabled_reason),
        "declined": False,
    }
