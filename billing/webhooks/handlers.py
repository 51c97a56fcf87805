"""What each Stripe event type does: find our top-up (or attempt, or card) and call the service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from billing.auto_recharge.charge import (
    recharge_attempt_fail,
    recharge_attempt_for_top_up,
    recharge_attempt_succeed,
)
from billing.events import emit_after_commit
from billing.models import BillingAccount, TopUp
from billing.money import Money, money_from_stripe
from billing.payments.events import CardSetupCompleted
from billing.top_ups.checkout import top_up_expire
from billing.top_ups.confirmations import (
    DISPUTE_FUNDS_WITHDRAWN,
    REFUND_NOT_MADE,
    top_up_currency_matches,
    top_up_dispute,
    top_up_fail,
    top_up_flag_uncredited,
    top_up_for_stripe,
    top_up_link_payment_intent,
    top_up_payment_attempt_failed,
    top_up_payment_set_aside,
    top_up_refund,
    top_up_refund_fail,
    top_up_succeed,
)
from billing.top_ups.limits import CREDITED

# How long a refund or dispute that names nothing of ours waits for the payment it refunds.
NOT_OURS_PATIENCE = timedelta(hours=1)


class EventNotReady(Exception):
    """The event refers to something we cannot find yet; a 5xx makes Stripe send it again.

    `ours`: the object carries our top-up id or customer, so it waits as long as Stripe retries.
    Otherwise it may belong to another product on the same Stripe account: after
    NOT_OURS_PATIENCE it is set aside for an admin instead of failing for days.
    """

    def __init__(self, message: str, *, ours: bool = True) -> None:
        super().__init__(message)
        self.ours = ours


def _top_up(obj: dict[str, Any], *, money_leaving: bool = False, **ids: Any) -> TopUp | None:
    """Our top-up for a Stripe object, or None for payments that are not ours (ignored).

    Missing but expected (our id in metadata, or a refund or dispute we cannot place yet) raises
    EventNotReady: Stripe sends the event again later, after the event it depends on. A refund
    or dispute that names nothing of ours waits only NOT_OURS_PATIENCE (see EventNotReady).
    """
    top_up = top_up_for_stripe(metadata=obj.get("metadata"), **ids)
    if top_up is not None:
        return top_up
    ours = bool((obj.get("metadata") or {}).get("top_up_id"))
    if money_leaving:  # a refund or dispute of ours may come before the payment's own event
        ours = ours or _our_customer(obj)
    if ours or money_leaving:
        raise EventNotReady(f"No top-up yet for {obj.get('object')} {obj.get('id')}", ours=ours)
    return None


def _our_customer(obj: dict[str, Any]) -> bool:
    customer = _stripe_id(obj.get("customer"))
    return bool(customer) and BillingAccount.objects.filter(stripe_customer_id=customer).exists()


def _stripe_id(value: Any) -> str | None:
    """Stripe sends either an id or an expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value


def checkout_session_completed(session: dict[str, Any]) -> None:
    if session.get("mode") == "setup":
        _card_saved(session)
        return
    if session.get("mode") != "payment":
        return
    top_up = _top_up(session, session_id=session.get("id"))
    if top_up is None:
        return
    payment_intent_id = _stripe_id(session.get("payment_intent"))
    if session.get("payment_status") == "paid" and payment_intent_id:
        top_up_succeed(
            top_up=top_up,
            payment_intent_id=payment_intent_id,
            amount=session["amount_total"],
            currency=session["currency"],
        )
    elif payment_intent_id:
        # Paid later (bank debits): async_payment_succeeded or payment_intent.succeeded follows.
        top_up_link_payment_intent(top_up=top_up, payment_intent_id=payment_intent_id)


def _card_saved(session: dict[str, Any]) -> None:
    """A setup-mode Checkout finished: a worker asks Stripe which card it saved."""
    account_id = (session.get("metadata") or {}).get("billing_account_id")
    setup_intent_id = _stripe_id(session.get("setup_intent"))
    if not account_id or not setup_intent_id:
        return  # not one of ours
    if not BillingAccount.objects.filter(pk=account_id).exists():
        return
    emit_after_commit(CardSetupCompleted(int(account_id), setup_intent_id))


def checkout_session_async_failed(session: dict[str, Any]) -> None:
    top_up = _top_up(session, session_id=session.get("id"))
    if top_up is None:
        return
    top_up_fail(top_up=top_up, reason="The payment failed after checkout.")


def checkout_session_expired(session: dict[str, Any]) -> None:
    """The developer left the payment page without paying: the top-up is no longer pending."""
    if session.get("mode") != "payment":
        return
    top_up = _top_up(session, session_id=session.get("id"))
    if top_up is not None:
        top_up_expire(top_up=top_up)


def payment_intent_succeeded(intent: dict[str, Any]) -> None:
    top_up = _top_up(intent, payment_intent_id=intent.get("id"))
    if top_up is None:
        return
    amount = intent.get("amount_received") or intent["amount"]
    attempt = recharge_attempt_for_top_up(top_up)
    if attempt is not None:  # an auto-recharge: credit and close the attempt together
        recharge_attempt_succeed(
            attempt_id=attempt.pk,
            payment_intent_id=intent["id"],
            amount=amount,
            currency=intent["currency"],
        )
        return
    top_up_succeed(
        top_up=top_up, payment_intent_id=intent["id"], amount=amount, currency=intent["currency"]
    )


def payment_intent_failed(intent: dict[str, Any]) -> None:
    top_up = _top_up(intent, payment_intent_id=intent.get("id"))
    if top_up is None:
        return
    error = intent.get("last_payment_error") or {}
    reason = error.get("message") or "The card payment failed."
    attempt = recharge_attempt_for_top_up(top_up)
    if attempt is not None:
        recharge_attempt_fail(attempt_id=attempt.pk, reason=reason, payment_intent_id=intent["id"])
        return
    by_card = (error.get("payment_method") or {}).get("type") == "card"
    top_up_payment_attempt_failed(
        top_up=top_up, reason=reason, payment_intent_id=intent["id"], by_card=by_card
    )


def charge_refunded(charge: dict[str, Any]) -> None:
    payment_intent_id = _stripe_id(charge.get("payment_intent"))
    top_up = _top_up(charge, money_leaving=True, payment_intent_id=payment_intent_id)
    assert top_up is not None
    refunded = money_from_stripe(charge["amount_refunded"], charge["currency"])
    if not _may_take_back(top_up, refunded, what="a refund"):
        return
    top_up_refund(
        top_up=top_up,
        charge_id=charge["id"],
        amount_refunded=charge["amount_refunded"],
        currency=charge["currency"],
    )


def _may_take_back(top_up: TopUp, money: Money, *, what: str) -> bool:
    """Whether a refund or dispute may move the wallet now. False when it was flagged for an
    admin instead; EventNotReady (Stripe retries) while its payment is not credited yet."""
    # Before waiting for the payment: a payment flagged for its currency is never credited.
    if not top_up_currency_matches(top_up=top_up, money=money, what=what):
        return False
    if top_up.state in CREDITED:
        return True
    if top_up_payment_set_aside(top_up=top_up):  # never credited, and never will be
        top_up_flag_uncredited(top_up=top_up, what=what, money=money)
        return False
    # Taking back what was never credited would leave a debt: wait for the payment's event.
    raise EventNotReady(f"{what.capitalize()} for top-up {top_up.public_id} before its payment")


def refund_changed(refund: dict[str, Any]) -> None:
    """A refund's own events: only a failed or cancelled refund moves money (it is given back);
    a refund's debit is made by charge.refunded."""
    if str(refund.get("status", "")) not in REFUND_NOT_MADE:
        return
    payment_intent_id = _stripe_id(refund.get("payment_intent"))
    top_up = _top_up(refund, money_leaving=True, payment_intent_id=payment_intent_id)
    assert top_up is not None
    if top_up_payment_set_aside(top_up=top_up):
        # Its refund debited nothing, so nothing is given back and nothing will come to wait for.
        money = money_from_stripe(refund["amount"], refund["currency"])
        return top_up_flag_uncredited(top_up=top_up, what="a failed refund", money=money)
    given_back = top_up_refund_fail(
        top_up=top_up, refund_id=refund["id"], amount=refund["amount"], currency=refund["currency"]
    )
    if not given_back:
        # Giving back what was never taken would be a gift: wait for the refund's charge.refunded.
        raise EventNotReady(f"Failed refund {refund['id']} before its refund was debited")


def dispute_changed(dispute: dict[str, Any]) -> None:
    """Any dispute event: the dispute's status says what Stripe has withdrawn (top_up_dispute)."""
    status = str(dispute.get("status", ""))
    if status not in DISPUTE_FUNDS_WITHDRAWN:
        return  # an inquiry (warning_*) or a prevented dispute: no money has moved
    payment_intent_id = _stripe_id(dispute.get("payment_intent"))
    top_up = _top_up(dispute, money_leaving=True, payment_intent_id=payment_intent_id)
    assert top_up is not None
    disputed = money_from_stripe(dispute["amount"], dispute["currency"])
    if not _may_take_back(top_up, disputed, what="a dispute"):
        return
    top_up_dispute(
        top_up=top_up,
        dispute_id=dispute["id"],
        amount=dispute["amount"],
        currency=dispute["currency"],
        status=status,
    )


HANDLERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "checkout.session.completed": checkout_session_completed,
    "checkout.session.async_payment_succeeded": checkout_session_completed,
    "checkout.session.async_payment_failed": checkout_session_async_failed,
    "checkout.session.expired": checkout_session_expired,
    "payment_intent.succeeded": payment_intent_succeeded,
    "payment_intent.payment_failed": payment_intent_failed,
    "charge.refunded": charge_refunded,
    # A refund that fails later: Stripe reports it by all three (older API versions: the first).
    "charge.refund.updated": refund_changed,
    "refund.updated": refund_changed,
    "refund.failed": refund_changed,
    # An inquiry becomes a chargeback by an update (with funds_withdrawn), not a new dispute.
    "charge.dispute.created": dispute_changed,
    "charge.dispute.updated": dispute_changed,
    "charge.dispute.funds_withdrawn": dispute_changed,
    "charge.dispute.funds_reinstated": dispute_changed,
    "charge.dispute.closed": dispute_changed,
}
