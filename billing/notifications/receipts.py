"""Receipts: the developer is emailed once for every credited top-up (Add credit or
auto-recharge) and for every refund or dispute that takes money back, or gives it back when
the refund failed or the dispute was won. Each receipt is owed in the transaction that moved
the money, and sent after its commit by a worker (or by the beat's sweep), once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from billing.models import LedgerEntry, SentNotification, TopUp
from billing.money import Money
from billing.notifications.once import (
    notification_owe,
    notification_send_once,
    notification_unsent,
    notifications_unsent,
)

Kind = SentNotification.Kind
# How far back the sweep looks: a receipt the mail server refused for days is left alone.
RECEIPT_SWEEP_WINDOW = timedelta(days=3)
# A receipt's own task sends it seconds after the commit: the sweep leaves younger ones to it.
RECEIPT_SWEEP_DELAY = timedelta(minutes=5)

# A PaymentIntent id -> (brand, last four) of the card that paid it, None if nobody can tell.
CardLookup = Callable[[str], tuple[str, str] | None]
UNKNOWN_CARD = "Card payment"


def top_up_receipt_key(top_up: TopUp) -> str:
    return f"receipt:top-up:{top_up.public_id}"


def refund_or_dispute_receipt_key(entry: LedgerEntry) -> str:
    what = "dispute" if entry.kind == LedgerEntry.Kind.DISPUTE else "refund"
    return f"receipt:{what}:{entry.transaction_id}"


def top_up_receipt_owe(*, top_up: TopUp) -> None:
    """In the transaction that credited the top-up."""
    notification_owe(
        key=top_up_receipt_key(top_up), kind=Kind.TOP_UP_RECEIPT, reference=str(top_up.pk)
    )


def refund_or_dispute_receipt_owe(*, entry: LedgerEntry) -> None:
    """In the transaction that wrote the ledger entry of Stripe's refund or dispute."""
    disputed = entry.kind == LedgerEntry.Kind.DISPUTE
    notification_owe(
        key=refund_or_dispute_receipt_key(entry),
        kind=Kind.DISPUTE_RECEIPT if disputed else Kind.REFUND_RECEIPT,
        reference=entry.transaction_id,
    )


def top_up_receipt_email(*, top_up_id: int, card_of: CardLookup) -> bool:
    """Send a credited top-up's receipt, once; True if this call sent it. `card_of` is asked
    only for a receipt still to send whose card the portal did not record (a Checkout
    payment's). A refused email raises, its claim given back for a retry."""
    top_up = TopUp.objects.select_related("billing_account__user").get(pk=top_up_id)
    key = top_up_receipt_key(top_up)
    credit = _entry(top_up.ledger_transaction_id)
    if credit is None or not notification_unsent(key=key):
        return False
    context = {
        **_context(top_up.billing_account.user, credit),
        "card": _card_label(top_up, card_of),
        "reference": top_up.public_id,
        "auto_recharge": top_up.source == TopUp.Source.AUTO_RECHARGE,
    }
    subject = f"Receipt: {context['amount']} added to your {context['currency']} balance"
    return _send_once(key, top_up.billing_account.user, subject, "top_up_receipt.txt", context)


def refund_or_dispute_receipt_email(*, transaction_id: str) -> bool:
    """Send the receipt of the ledger entry a refund or dispute made, once; True if this call
    sent it. Its memo says why the money moved. A refused email raises, as above."""
    entry = _entry(transaction_id)
    if entry is None:
        return False
    key = refund_or_dispute_receipt_key(entry)
    if not notification_unsent(key=key):
        return False
    user = entry.wallet.billing_account.user
    taken_back = entry.amount < 0
    context = {**_context(user, entry), "taken_back": taken_back, "why": entry.memo}
    moved = "taken back from" if taken_back else "given back to"
    subject = f"{context['amount']} was {moved} your {context['currency']} balance"
    return _send_once(key, user, subject, "refund_or_dispute_receipt.txt", context)


def receipts_unsent() -> tuple[list[int], list[str]]:
    """Receipts owed within the sweep's window, older than its delay, that are neither sent
    nor being sent (their task was lost, gave up or died): (top-up ids, ledger transaction
    ids of refunds and disputes)."""
    now = timezone.now()
    owed = notifications_unsent(
        created_after=now - RECEIPT_SWEEP_WINDOW, created_before=now - RECEIPT_SWEEP_DELAY
    )
    top_ups = [int(reference) for kind, reference in owed if kind == Kind.TOP_UP_RECEIPT]
    moved_back = (Kind.REFUND_RECEIPT, Kind.DISPUTE_RECEIPT)
    return top_ups, [reference for kind, reference in owed if kind in moved_back]


def _entry(transaction_id: str) -> LedgerEntry | None:
    if not transaction_id:
        return None
    entries = LedgerEntry.objects.select_related("wallet__billing_account__user")
    return entries.filter(transaction_id=transaction_id).first()


def _context(user: User, entry: LedgerEntry) -> dict[str, Any]:
    """What every receipt says: the amount, the wallet's balance right after this entry (not
    a later one), when, and where to see it all."""
    currency = entry.wallet.currency
    return {
        "name": user.get_full_name() or user.email,
        "amount": Money(abs(entry.amount), currency),
        "currency": currency,
        "balance_after": Money(entry.balance_after, currency),
        "date": entry.created_at,
        "link": settings.PORTAL_BASE_URL + reverse("my_balance"),
    }


def _card_label(top_up: TopUp, card_of: CardLookup) -> str:
    """As the balance page shows a card, e.g. "Visa •••• 4242"; "Card payment" if unknown."""
    card = (top_up.card_brand, top_up.card_last4) if top_up.card_last4 else None
    if card is None and top_up.stripe_payment_intent_id:
        card = card_of(top_up.stripe_payment_intent_id)
    if card is None:
        return UNKNOWN_CARD
    brand, last4 = card
    if not last4:  # offline: the test payment page
        return brand.capitalize() or UNKNOWN_CARD
    return f"{brand.title()} •••• {last4}"


def _send_once(key: str, user: User, subject: str, template: str, context: dict) -> bool:
    body = render_to_string(f"emails/billing/{template}", context).strip() + "\n"

    def send() -> None:
        send_mail(f"[Developer portal] {subject}", body, settings.DEFAULT_FROM_EMAIL, [user.email])

    return notification_send_once(key=key, recipient=user.email, send=send)
