"""What Stripe's confirmations do to a top-up: credit it, fail it, refund or dispute it.

Crediting happens only here, in `top_up_succeed`, with the PaymentIntent id as the ledger
transaction id: however often and in whatever order Stripe reports a payment, it credits once.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.events import emit_after_commit
from billing.expiry.services import top_up_lot
from billing.ledger.entries import Actor, ledger_apply
from billing.ledger.services import wallet_credit
from billing.locks import top_up_lock_by
from billing.models import LedgerEntry, TopUp
from billing.models.state import transition
from billing.money import Money, money_from_stripe
from billing.notifications.admins import top_up_flagged
from billing.notifications.receipts import refund_or_dispute_receipt_owe, top_up_receipt_owe
from billing.top_ups.checkout import stripe_page
from billing.top_ups.events import MoneyGivenBack, MoneyTakenBack, TopUpCredited
from billing.top_ups.limits import CREDITED

logger = logging.getLogger(__name__)
State = TopUp.State


def top_up_for_stripe(
    *, metadata: dict | None, payment_intent_id: str | None = None, session_id: str | None = None
) -> TopUp | None:
    """Find and lock our top-up from what a Stripe object carries: our id in metadata, or
    Stripe's ids. Call inside a transaction; the services below expect the row locked, so that
    concurrent events about one payment take turns."""
    return top_up_lock_by(
        public_id=(metadata or {}).get("top_up_id") or "",
        payment_intent_id=payment_intent_id or "",
        session_id=session_id or "",
    )


def top_up_succeed(*, top_up: TopUp, payment_intent_id: str, amount: int, currency: str) -> bool:
    """Stripe says the payment succeeded: credit once, if amount and currency match.

    `top_up` is locked by the caller's transaction (top_up_for_stripe, top_up_lock).
    Returns True if this call credited the wallet.
    """
    paid = money_from_stripe(amount, currency)
    if (paid.nanos, paid.currency) != (top_up.amount, top_up.currency):
        # Keep Stripe's id, so that a refund or dispute of this payment finds the top-up.
        top_up_link_payment_intent(top_up=top_up, payment_intent_id=payment_intent_id)
        TopUp.objects.filter(pk=top_up.pk).update(payment_set_aside=True)
        top_up.payment_set_aside = True
        _flag(
            top_up,
            f"Stripe reported {paid} for a top-up of {top_up.money}; not credited.",
        )
        return False
    if top_up.state in CREDITED:
        return False
    result = wallet_credit(
        account=top_up.billing_account,
        money=paid,
        transaction_id=payment_intent_id,
        actor=Actor.stripe(),
        memo="Card payment" if top_up.source == TopUp.Source.CHECKOUT else "Auto-recharge",
    )
    transition(
        top_up,
        State.SUCCEEDED,
        locked=True,  # by the caller
        succeeded_at=timezone.now(),
        stripe_payment_intent_id=payment_intent_id,
        ledger_transaction_id=result.entry.transaction_id,
    )
    if top_up.refunded_amount >= top_up.amount:  # refunded in full before it was confirmed
        transition(top_up, State.REFUNDED)
    if result.replayed:
        return False
    top_up_receipt_owe(top_up=top_up)  # owed with the credit; sent after the commit
    emit_after_commit(TopUpCredited(top_up.pk))
    return True


def top_up_payment_attempt_failed(
    *, top_up: TopUp, reason: str, payment_intent_id: str, by_card: bool
) -> bool:
    """Stripe says a payment attempt failed (payment_intent.payment_failed). On Stripe's
    payment page that is one declined card: the page stays open and the developer may try
    another, so the top-up stays pending, counting against the limits and cancellable, until
    the page is paid or expires. A card is charged while the developer is on the page, so a
    card's failure never ends a Checkout top-up, even when Stripe delivers it after the page was
    completed with a bank debit. A failure after the page was completed that is not a card's (a
    bank debit that bounced), or on the offline test page, ends the top-up. True if it failed."""
    on_the_page = by_card or not top_up.stripe_payment_intent_id  # completing the page links it
    still_payable = (
        top_up.source == TopUp.Source.CHECKOUT
        and top_up.state == State.PENDING
        and on_the_page
        and stripe_page(top_up) is not None
    )
    if still_payable:
        logger.info("Top-up %s: a payment attempt failed: %s", top_up.public_id, reason)
        return False
    return top_up_fail(top_up=top_up, reason=reason, payment_intent_id=payment_intent_id)


def top_up_fail(*, top_up: TopUp, reason: str, payment_intent_id: str | None = None) -> bool:
    fields: dict[str, Any] = {"failure_reason": reason[:500]}
    if payment_intent_id:
        fields["stripe_payment_intent_id"] = payment_intent_id
    return transition(top_up, State.FAILED, **fields)


def top_up_link_payment_intent(*, top_up: TopUp, payment_intent_id: str) -> None:
    TopUp.objects.filter(pk=top_up.pk, stripe_payment_intent_id__isnull=True).update(
        stripe_payment_intent_id=payment_intent_id
    )


def top_up_refund(*, top_up: TopUp, charge_id: str, amount_refunded: int, currency: str) -> None:
    """`charge.refunded` carries the cumulative refunded amount: debit only what is new.
    `top_up` is locked by the caller's transaction."""
    refunded = money_from_stripe(amount_refunded, currency)
    if not top_up_currency_matches(top_up=top_up, money=refunded, what="a refund"):
        return
    new = refunded.nanos - top_up.refunded_amount
    if new <= 0:
        _check_refunded_after_failure(top_up, refunded)
        return
    _stripe_entry(
        top_up,
        delta=-new,
        kind=LedgerEntry.Kind.REFUND,
        transaction_id=f"refund:{charge_id}:{amount_refunded}",
        memo=f"Refund of {Money(new, top_up.currency)} by Stripe",
    )
    fields: dict[str, object] = {"refunded_amount": refunded.nanos, "stripe_charge_id": charge_id}
    TopUp.objects.filter(pk=top_up.pk).update(**fields)
    top_up.refunded_amount = refunded.nanos
    if _refunded_net(top_up) >= top_up.amount:
        transition(top_up, State.REFUNDED)


def _stripe_entry(
    top_up: TopUp, *, delta: int, kind: LedgerEntry.Kind, transaction_id: str, memo: str
) -> None:
    """A ledger entry Stripe's money movement makes in the top-up's wallet, exactly once, and
    the developer's receipt for it, owed with it and sent after the commit. Callers have
    checked the currency against the top-up's."""
    result = ledger_apply(
        account=top_up.billing_account,
        currency=top_up.currency,
        delta=delta,
        kind=kind,
        transaction_id=transaction_id,
        actor=Actor.stripe(),
        memo=memo,
        lot_id=top_up_lot(top_up=top_up),  # takes back (or gives back) this payment's credit
    )
    if not result.replayed:
        refund_or_dispute_receipt_owe(entry=result.entry)
        fact = MoneyTakenBack if delta < 0 else MoneyGivenBack
        emit_after_commit(fact(transaction_id))


def _refunded_net(top_up: TopUp) -> int:
    """What the developer has been refunded and kept: refund debits less failed refunds."""
    return top_up.refunded_amount - top_up.refund_failed_amount


def _check_refunded_after_failure(top_up: TopUp, refunded: Money) -> None:
    """Refunds are debited by the charge's growing `amount_refunded`. Once a refund has failed,
    a total between what is kept and what was debited is either an old event or a new refund
    counted without the failed one: which, the charge does not say, so an admin looks."""
    if _refunded_net(top_up) < refunded.nanos and top_up.refund_failed_amount:
        _flag(
            top_up,
            f"Stripe reported {refunded} refunded in all after a failed refund; "
            f"{Money(_refunded_net(top_up), top_up.currency)} is debited now. "
            "If this is a new refund, debit the difference by hand.",
        )


# A refund in one of these states gave the customer nothing back (Stripe returned the money to
# the account): its debit is given back to the developer.
REFUND_NOT_MADE = frozenset({"failed", "canceled"})


def top_up_refund_fail(*, top_up: TopUp, refund_id: str, amount: int, currency: str) -> bool:
    """A refund failed at Stripe: credit its debit back once (`refund-failed:<refund id>`).

    Returns False, changing nothing, while the refund's own debit has not been seen yet: the
    failure must not credit money that was never taken. `top_up` is locked by the caller.
    """
    money = money_from_stripe(amount, currency)
    if not top_up_currency_matches(top_up=top_up, money=money, what="a failed refund"):
        return True
    transaction_id = f"refund-failed:{refund_id}"
    if LedgerEntry.objects.filter(transaction_id=transaction_id).exists():
        return True  # the same failure, told by another event
    if top_up.refunded_amount < top_up.refund_failed_amount + money.nanos:
        return False
    _stripe_entry(
        top_up,
        delta=money.nanos,
        kind=LedgerEntry.Kind.REFUND,
        transaction_id=transaction_id,
        memo=f"Refund of {money} failed at Stripe: given back",
    )
    top_up.refund_failed_amount += money.nanos
    TopUp.objects.filter(pk=top_up.pk).update(refund_failed_amount=top_up.refund_failed_amount)
    if top_up.state == State.REFUNDED and _refunded_net(top_up) < top_up.amount:
        transition(top_up, State.SUCCEEDED)
    return True


# Dispute statuses under which Stripe has taken the disputed amount from the account. A won
# dispute had it taken and then given back. Inquiries (warning_*) and prevented disputes move no
# money; neither does a status this code does not know.
DISPUTE_FUNDS_WITHDRAWN = frozenset({"needs_response", "under_review", "lost", "won"})


def top_up_dispute(
    *, top_up: TopUp, dispute_id: str, amount: int, currency: str, status: str
) -> None:
    """Bring the wallet in line with the dispute as Stripe now describes it.

    Every dispute event carries the whole dispute, so the status alone says what Stripe has
    withdrawn: the debit once funds were withdrawn, and its reversal once the dispute is won.
    Both are exactly-once ledger entries, so events in any order and any number of times end in
    the same balance. `top_up` is locked by the caller's transaction.
    """
    if status not in DISPUTE_FUNDS_WITHDRAWN:
        return
    money = money_from_stripe(amount, currency)
    if not top_up_currency_matches(top_up=top_up, money=money, what="a dispute"):
        return
    _stripe_entry(
        top_up,
        delta=-money.nanos,
        kind=LedgerEntry.Kind.DISPUTE,
        transaction_id=f"dispute:{dispute_id}",
        # The memo is the receipt's "why": a dispute first seen lost was never seen opened.
        memo=f"Dispute lost ({money})" if status == "lost" else f"Card payment disputed ({money})",
    )
    restored = f"dispute-won:{dispute_id}"
    if status == "won":
        _stripe_entry(
            top_up,
            delta=money.nanos,
            kind=LedgerEntry.Kind.DISPUTE,
            transaction_id=restored,
            memo=f"Dispute won: {money} restored",
        )
        if top_up.state == State.DISPUTED:  # a refunded top-up stays refunded
            transition(top_up, State.SUCCEEDED)
    elif not LedgerEntry.objects.filter(transaction_id=restored).exists():
        transition(top_up, State.DISPUTED)  # not when a later "won" came first


def top_up_currency_matches(*, top_up: TopUp, money: Money, what: str) -> bool:
    """Money leaving in another currency than the top-up's would hit a wallet that never
    received the payment: flag the top-up for an admin instead, and move nothing."""
    if money.currency == top_up.currency:
        return True
    _flag(
        top_up,
        f"Stripe reported {what} of {money} for a top-up of "
        f"{top_up.money}; no balance was changed.",
    )
    return False


def top_up_payment_set_aside(*, top_up: TopUp) -> bool:
    """Its payment was flagged for an admin instead of credited: it will not be credited by
    itself, so nothing waits for it."""
    return top_up.state not in CREDITED and top_up.payment_set_aside


def top_up_flag_uncredited(*, top_up: TopUp, what: str, money: Money) -> None:
    """Money left Stripe for a payment that was flagged and never credited: nothing to take
    back from the developer, so an admin settles it by hand."""
    _flag(
        top_up,
        f"Stripe reported {what} of {money} for this top-up, which was never "
        "credited; no balance was changed.",
    )


def _flag(top_up: TopUp, reason: str) -> None:
    """Flag for an admin: one email per distinct reason, however often Stripe repeats it."""
    current = TopUp.objects.values_list("flag_reason", flat=True).get(pk=top_up.pk)
    if reason in current:
        return
    combined = f"{current}\n{reason}" if current else reason
    TopUp.objects.filter(pk=top_up.pk).update(flagged=True, flag_reason=combined)
    top_up.flagged, top_up.flag_reason = True, combined
    transaction.on_commit(lambda: top_up_flagged(top_up_public_id=top_up.public_id, reason=reason))
