"""Celery tasks: thin, idempotent, taking ids or plain data; the services do the work.

Task names are pinned: the beat schedule and messages in flight use them.
"""

from __future__ import annotations

import stripe
from celery import shared_task
from django.db import connection
from django.utils import timezone

from billing.auto_recharge.charge import auto_recharge_charge
from billing.auto_recharge.claim import auto_recharge_claim
from billing.auto_recharge.selectors import auto_recharge_due
from billing.expiry.services import credits_expire
from billing.notifications.alerts import (
    balance_alert_email,
    balance_alerts_check,
    balance_alerts_sweep,
)
from billing.notifications.expiry import credit_expiry_email, credit_expiry_emails_unsent
from billing.notifications.fees import fee_unpaid_email, fee_unpaid_emails_unsent
from billing.notifications.receipts import (
    receipts_unsent,
    refund_or_dispute_receipt_email,
    top_up_receipt_email,
)
from billing.payments import stripe_gateway
from billing.payments.cards import card_save_from_setup_intent
from billing.subscriptions.services import recurring_fees_charge, unpaid_fees_settle
from billing.usage.collect import usage_owed_collect
from billing.usage.selectors import wallets_owing_usage
from billing.webhooks.receive import webhook_receive

# Network trouble and Stripe's own 5xx: try again later under the same idempotency key.
# A 409 for the same idempotency key in flight elsewhere is transient too.
TRANSIENT_STRIPE_ERRORS = (
    stripe.APIConnectionError,
    stripe.RateLimitError,
    stripe.APIError,
    stripe.IdempotencyError,
)

# The mail server refused or did not answer (smtplib's errors are OSErrors): a receipt's claim
# was given back, and a retry sends it.
MAIL_ERRORS = (OSError,)


def _backoff(retries: int) -> int:
    """Seconds before the next try: 2, 4, 8 … at most 5 minutes."""
    return min(2 ** (retries + 1), 300)


@shared_task(
    name="billing.tasks.offline_event_deliver", acks_late=True, time_limit=60, soft_time_limit=45
)
def offline_event_deliver(payload: str, signature: str) -> int:
    """Offline mode: hand a signed test-payment event to the webhook handler."""
    try:
        status, _ = webhook_receive(payload=payload.encode(), signature=signature)
    finally:
        connection.close()  # also run in a short-lived thread offline: leave nothing open
    return status


@shared_task(
    name="billing.tasks.auto_recharge_run",
    bind=True,
    acks_late=True,
    max_retries=8,
    time_limit=60,
    soft_time_limit=45,
)
def auto_recharge_run(self, account_id: int, currency: str) -> str:  # type: ignore[no-untyped-def]
    """Claim a recharge if one is due (or resume the one in flight) and charge it."""
    attempt = auto_recharge_claim(
        account_id=account_id, currency=currency, task_id=self.request.id or ""
    )
    if attempt is None:
        return "not due"
    try:
        return auto_recharge_charge(attempt_id=attempt.pk)
    except TRANSIENT_STRIPE_ERRORS as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(
    name="billing.tasks.auto_recharge_sweep", acks_late=True, time_limit=60, soft_time_limit=45
)
def auto_recharge_sweep() -> int:
    """Every minute (celery beat): catch wallets below threshold that no debit reported, and
    attempts whose worker died."""
    due = auto_recharge_due()
    for account_id, currency in due:
        auto_recharge_run.delay(account_id, currency)
    return len(due)


@shared_task(
    name="billing.tasks.card_save_from_setup",
    bind=True,
    acks_late=True,
    max_retries=8,
    time_limit=60,
    soft_time_limit=45,
)
def card_save_from_setup(self, account_id: int, setup_intent_id: str) -> None:  # type: ignore[no-untyped-def]
    try:
        card_save_from_setup_intent(account_id=account_id, setup_intent_id=setup_intent_id)
    except TRANSIENT_STRIPE_ERRORS as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(
    name="billing.tasks.top_up_receipt_send",
    bind=True,
    acks_late=True,
    max_retries=8,
    time_limit=60,
    soft_time_limit=45,
)
def top_up_receipt_send(self, top_up_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Email a credited top-up's receipt, once; Stripe is asked which card paid."""
    try:
        return top_up_receipt_email(top_up_id=top_up_id, card_of=stripe_gateway.payment_intent_card)
    except MAIL_ERRORS as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(
    name="billing.tasks.refund_or_dispute_receipt_send",
    bind=True,
    acks_late=True,
    max_retries=8,
    time_limit=60,
    soft_time_limit=45,
)
def refund_or_dispute_receipt_send(self, transaction_id: str) -> bool:  # type: ignore[no-untyped-def]
    """Email the receipt of money a refund or dispute took back (or gave back), once."""
    try:
        return refund_or_dispute_receipt_email(transaction_id=transaction_id)
    except MAIL_ERRORS as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(name="billing.tasks.receipts_sweep", acks_late=True, time_limit=60, soft_time_limit=45)
def receipts_sweep() -> int:
    """Every five minutes (celery beat): send the receipts whose task was lost (the broker was
    down), gave up (the mail server was) or died. The claim keeps each to one email."""
    top_up_ids, transaction_ids = receipts_unsent()
    for top_up_id in top_up_ids:
        top_up_receipt_send.delay(top_up_id)
    for transaction_id in transaction_ids:
        refund_or_dispute_receipt_send.delay(transaction_id)
    unpaid = fee_unpaid_emails_unsent()
    for transaction_id in unpaid:
        fee_unpaid_email_send.delay(transaction_id)
    expiring = credit_expiry_emails_unsent()
    for key in expiring:
        credit_expiry_email_send.delay(key)
    return len(top_up_ids) + len(transaction_ids) + len(unpaid) + len(expiring)


@shared_task(
    name="billing.tasks.charge_recurring_fees",
    acks_late=True,
    time_limit=3600,
    soft_time_limit=3500,
)
def charge_recurring_fees() -> int:
    """Every hour (celery beat): the fees that fell due, the 1st of the month's recurring fees
    and those of plans that started since. Twice at once, or again, charges nothing more."""
    run = recurring_fees_charge()
    for transaction_id in run.unpaid:
        fee_unpaid_email_send.delay(transaction_id)
    return run.charged


@shared_task(
    name="billing.tasks.unpaid_fees_settle",
    bind=True,
    acks_late=True,
    max_retries=8,
    time_limit=300,
    soft_time_limit=280,
)
def unpaid_fees_settle_run(self, account_id: int, currency: str) -> int:  # type: ignore[no-untyped-def]
    """Money came into a wallet that owes plan fees: charge them now."""
    return unpaid_fees_settle(account_id=account_id, currency=currency)


@shared_task(
    name="billing.tasks.fee_unpaid_email_send",
    bind=True,
    acks_late=True,
    max_retries=8,
    time_limit=60,
    soft_time_limit=45,
)
def fee_unpaid_email_send(self, transaction_id: str) -> bool:  # type: ignore[no-untyped-def]
    """Email the developer that a plan fee is unpaid, once."""
    try:
        return fee_unpaid_email(transaction_id=transaction_id)
    except MAIL_ERRORS as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(
    name="billing.tasks.owed_usage_collect",
    bind=True,
    acks_late=True,
    max_retries=8,
    time_limit=120,
    soft_time_limit=100,
)
def owed_usage_collect_run(self, account_id: int, currency: str) -> int:  # type: ignore[no-untyped-def]
    """Money came into a wallet that owes usage: pay it now. Returns the nanos paid."""
    return usage_owed_collect(account_id=account_id, currency=currency).nanos


@shared_task(
    name="billing.tasks.collect_owed_usage",
    acks_late=True,
    time_limit=3600,
    soft_time_limit=3500,
)
def collect_owed_usage() -> int:
    """Every hour (celery beat): owed usage of wallets whose credit's reaction was lost (a
    broker down at the time). Returns how many wallets paid something."""
    return sum(
        usage_owed_collect(account_id=account_id, currency=currency).nanos > 0
        for account_id, currency in wallets_owing_usage()
    )


@shared_task(
    name="billing.tasks.balance_alerts_check",
    acks_late=True,
    time_limit=60,
    soft_time_limit=45,
)
def balance_alerts_run(account_id: int, currency: str) -> int:
    """A debit reached the wallet's armed alert, or a top-up re-arms them: record the
    thresholds crossed (once each) and send the email owed. Returns how many are new."""
    alerts = balance_alerts_check(account_id=account_id, currency=currency)
    if alerts:  # the one email owed: the lowest threshold crossed
        balance_alert_email_send.delay(alerts[0].pk)
    return len(alerts)


@shared_task(
    name="billing.tasks.balance_alert_email_send",
    bind=True,
    acks_late=True,
    max_retries=8,
    time_limit=60,
    soft_time_limit=45,
)
def balance_alert_email_send(self, alert_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Email the developer a low-balance alert, once."""
    try:
        return balance_alert_email(alert_id=alert_id)
    except MAIL_ERRORS as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(
    name="billing.tasks.send_balance_alerts",
    acks_late=True,
    time_limit=3600,
    soft_time_limit=3500,
)
def send_balance_alerts() -> int:
    """Every 10 minutes (celery beat) and `manage.py send_balance_alerts`: the wallets whose
    alert reaction was lost, and the emails owed but not sent. Returns the alerts sent."""
    return balance_alerts_sweep()


@shared_task(
    name="billing.tasks.expire_credits", acks_late=True, time_limit=3600, soft_time_limit=3500
)
def expire_credits() -> int:
    """Every hour (celery beat): expire the credit lots due, once each, and warn of those that
    expire in 30, 7 or 1 days. Returns how many expiry entries it booked."""
    run = credits_expire(as_of=timezone.now())
    for key in run.warnings:
        credit_expiry_email_send.delay(key)
    return len(run.booked)


@shared_task(
    name="billing.tasks.credit_expiry_email_send",
    bind=True,
    acks_late=True,
    max_retries=8,
    time_limit=60,
    soft_time_limit=45,
)
def credit_expiry_email_send(self, key: str) -> bool:  # type: ignore[no-untyped-def]
    """Email the developer that credit is about to expire, once."""
    try:
        return credit_expiry_email(key=key)
    except MAIL_ERRORS as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
