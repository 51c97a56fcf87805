"""The one place that says what follows what: facts stated by lower areas after their commit
(billing/events.py), wired to the reactions of higher ones. Loaded by BillingConfig.ready(), so
web processes, Celery workers and management commands all run the same wiring.

Reactions only enqueue work or send mail; they never move money inside the transaction that
stated the fact. `robust`: a failing reaction is logged and the request that stated the fact
still succeeds (the sweep or Stripe's retry catches up); not robust: the failure fails it.
"""

from __future__ import annotations

from billing.auto_recharge.settings import auto_recharge_switch_off_all
from billing.events import react, reactions_clear
from billing.ledger.events import BalanceAlertsDue, MoneyCredited, RechargeMayBeDue
from billing.offline import deliver_payment_intent_succeeded
from billing.payments.events import CardSetupCompleted, OfflineChargeSucceeded
from billing.tasks import (
    auto_recharge_run,
    balance_alerts_run,
    card_save_from_setup,
    owed_usage_collect_run,
    refund_or_dispute_receipt_send,
    top_up_receipt_send,
    unpaid_fees_settle_run,
)
from billing.top_ups.events import (
    CurrencyWithdrawn,
    MoneyGivenBack,
    MoneyTakenBack,
    TopUpCredited,
)


def recharge(event: RechargeMayBeDue) -> None:
    """A worker claims the recharge if one is due (in-process when Celery has no broker)."""
    auto_recharge_run.delay(event.account_id, event.currency)


def switch_off_auto_recharges(event: CurrencyWithdrawn) -> None:
    """Auto-recharge needs Add credit in its currency: once that is no longer offered it is
    switched off, so offering the currency again does not silently start charging cards."""
    auto_recharge_switch_off_all(
        currency=event.currency,
        reason=f"Switched off because adding credit in {event.currency} is no longer offered.",
    )


def save_card(event: CardSetupCompleted) -> None:
    """A worker asks Stripe which card the setup saved."""
    card_save_from_setup.delay(event.account_id, event.setup_intent_id)


def send_top_up_receipt(event: TopUpCredited) -> None:
    """A worker emails the developer the receipt (in-process when Celery has no broker)."""
    top_up_receipt_send.delay(event.top_up_id)


def send_refund_or_dispute_receipt(event: MoneyTakenBack | MoneyGivenBack) -> None:
    refund_or_dispute_receipt_send.delay(event.transaction_id)


def pay_unpaid_fees(event: MoneyCredited) -> None:
    """A worker pays the plan fees the wallet owes (the ledger states it only for a wallet
    flagged as owing fees, so the many credits that owe nothing cost nothing here)."""
    unpaid_fees_settle_run.delay(event.account_id, event.currency)


def collect_owed_usage(event: MoneyCredited) -> None:
    """A worker pays the usage the wallet owes from the new money (the same statement says
    whether it owes any)."""
    owed_usage_collect_run.delay(event.account_id, event.currency)


def check_balance_alerts(event: BalanceAlertsDue) -> None:
    """A worker records the low-balance alerts crossed (once each) and emails the developer."""
    balance_alerts_run.delay(event.account_id, event.currency)


def register() -> None:
    reactions_clear()
    # The debit or the saved settings are committed; a failing trigger must not turn their
    # answer into an error (the beat sweep finds the wallet again).
    react(RechargeMayBeDue, recharge, robust=True)
    react(CurrencyWithdrawn, switch_off_auto_recharges, robust=True)
    # Not robust: a broker that is down fails the webhook (the event is reopened), so Stripe
    # sends it again and the card is not lost.
    react(CardSetupCompleted, save_card, robust=False)
    react(OfflineChargeSucceeded, deliver_payment_intent_succeeded, robust=False)
    # Robust: the money has moved and the receipt is owed with it; a broker that is down must
    # not fail the webhook (the receipts sweep sends it later).
    react(TopUpCredited, send_top_up_receipt, robust=True)
    react(MoneyTakenBack, send_refund_or_dispute_receipt, robust=True)
    react(MoneyGivenBack, send_refund_or_dispute_receipt, robust=True)
    # Robust: the credit is committed; the fee run retries unpaid fees every hour anyway.
    react(MoneyCredited, pay_unpaid_fees, robust=True)
    # Robust: the credit is committed; the hourly collect_owed_usage finds the wallet again.
    react(MoneyCredited, collect_owed_usage, robust=True)
    # Robust: the debit or top-up is committed; send_balance_alerts sweeps every 10 minutes.
    react(BalanceAlertsDue, check_balance_alerts, robust=True)
