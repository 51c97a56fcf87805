"""Stripe webhooks: verify, store, process, answer (the dj-stripe way).

Nothing is stored or credited before the signature is verified against the raw body. Each event
is stored once under Stripe's id; processing runs in its own transaction and is idempotent, so a
duplicate delivery, a concurrent one or one out of order changes nothing twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import stripe
from django.db import connection, transaction
from django.utils import timezone

from billing import stripe_gateway
from billing.auto_recharge import (
    recharge_attempt_fail,
    recharge_attempt_for_top_up,
    recharge_attempt_succeed,
)
from billing.models import BillingAccount, StripeEvent, TopUp
from billing.money import Money, money_from_stripe
from billing.top_ups import (
    CREDITED,
    DISPUTE_FUNDS_WITHDRAWN,
    REFUND_NOT_MADE,
    notify_admins,
    top_up_currency_matches,
    top_up_dispute,
    top_up_expire,
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

logger = logging.getLogger(__name__)
TOLERANCE_SECONDS = 300
DONE = (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED)


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


def webhook_receive(*, payload: bytes, signature: str) -> tuple[int, str]:
    """Handle one delivery; returns (HTTP status, short message)."""
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), signature, stripe_gateway.webhook_secret(), TOLERANCE_SECONDS
        )
        event = json.loads(payload)
        event_id, event_type = event["id"], event["type"]
        obj = event["data"]["object"]
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        return 400, "Invalid or missing Stripe-Signature."
    except (ValueError, KeyError, TypeError):
        return 400, "Not a Stripe event."
    if not isinstance(event_id, str) or not isinstance(obj, dict):
        return 400, "Not a Stripe event."
    status = _event_status(event_id)
    if status in DONE:
        return 200, "Already processed."
    if status is None:
        _event_store(event_id, str(event_type), payload)
    return event_process(event_id=event_id, event_type=str(event_type), obj=obj)


# The event log's bookkeeping runs on every delivery, Stripe's retries and duplicates included,
# so it is three plain statements: the ORM spent more CPU compiling them than PostgreSQL spent
# running them (bench/webhook.py).
_EVENTS = StripeEvent._meta.db_table


def _event_status(event_id: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status FROM {_EVENTS} WHERE id = %s", [event_id])  # noqa: S608
        row = cursor.fetchone()
    return row[0] if row else None


def _event_store(event_id: str, event_type: str, payload: bytes) -> None:
    """Store the verified event as received. The same event arriving at the same moment loses
    the race quietly: processing is idempotent, so both may go on."""
    json_param = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_EVENTS} (id, type, payload, status, error, attempts, received_at) "  # noqa: S608
            f"VALUES (%s, %s, {json_param}, %s, '', 0, %s) ON CONFLICT (id) DO NOTHING",
            [
                event_id,
                event_type[:100],
                payload.decode("utf-8"),
                StripeEvent.Status.RECEIVED,
                _now(),
            ],
        )


def _now() -> Any:
    return connection.ops.adapt_datetimefield_value(timezone.now())


def event_process(*, event_id: str, event_type: str, obj: dict[str, Any]) -> tuple[int, str]:
    """Run the handler and mark the event processed in one transaction."""
    handler = HANDLERS.get(event_type)
    if handler is None:
        _finish(event_id, StripeEvent.Status.IGNORED)
        return 200, f"Ignored: {event_type} is not handled."
    committed: list[bool] = []
    try:
        with transaction.atomic():
            # Registered first, so it runs before the handler's own hooks.
            transaction.on_commit(lambda: committed.append(True))
            handler(obj)
            _finish(event_id, StripeEvent.Status.PROCESSED)
    except EventNotReady as exc:
        if not exc.ours and _waiting_since(event_id) > NOT_OURS_PATIENCE:
            return _set_aside(event_id, event_type, exc)
        return _failed(event_id, event_type, exc)
    except Exception as exc:
        if committed:
            # What the handler hands on after its commit (a task for a worker) failed, e.g. the
            # broker is down: processing is idempotent, so Stripe's retry does it all again.
            _reopen(event_id)
        return _failed(event_id, event_type, exc)
    return 200, "Processed."


def _reopen(event_id: str) -> None:
    """Undo _finish: the event counts as not processed, and this delivery as not yet counted."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_EVENTS} SET status = %s, processed_at = NULL, "  # noqa: S608
            "attempts = attempts - 1 WHERE id = %s AND status = %s",
            [StripeEvent.Status.RECEIVED, event_id, StripeEvent.Status.PROCESSED],
        )


def _failed(event_id: str, event_type: str, exc: Exception) -> tuple[int, str]:
    done = ", ".join(["%s"] * len(DONE))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_EVENTS} SET status = %s, error = %s, attempts = attempts + 1 "  # noqa: S608
            f"WHERE id = %s AND status NOT IN ({done})",
            [StripeEvent.Status.FAILED, repr(exc)[:2000], event_id, *DONE],
        )
    if not isinstance(exc, EventNotReady):
        logger.exception("Stripe event %s (%s) failed", event_id, event_type)
        _notify_admins_once(event_id, event_type, exc)
    return 500, "Processing failed; Stripe will retry."


def _notify_admins_once(event_id: str, event_type: str, exc: Exception) -> None:
    """Stripe retries for days: tell the admins once per event, not at every retry. The claim is
    one conditional UPDATE, so of two deliveries failing at once exactly one emails; an email
    the mail server refused gives the claim back for the next failure."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_EVENTS} SET admins_notified = %s "  # noqa: S608
            "WHERE id = %s AND NOT admins_notified RETURNING id",
            [True, event_id],
        )
        claimed = cursor.fetchone() is not None
    if not claimed:
        return
    sent = notify_admins(
        f"Crediting failed for Stripe event {event_id}",
        f"Processing {event_type} failed: {exc!r}. Stripe will retry; see the admin.",
    )
    if not sent:
        StripeEvent.objects.filter(pk=event_id).update(admins_notified=False)


def _waiting_since(event_id: str) -> timedelta:
    received = StripeEvent.objects.filter(pk=event_id).values_list("received_at", flat=True)
    return timezone.now() - (received.first() or timezone.now())


def _set_aside(event_id: str, event_type: str, exc: EventNotReady) -> tuple[int, str]:
    """Money left the Stripe account for a payment we cannot place: tell an admin, move none."""
    _finish(event_id, StripeEvent.Status.IGNORED, error=f"Set aside: {exc}")
    notify_admins(
        f"A Stripe {event_type} the portal cannot place",
        f"Stripe event {event_id}: {exc}. It names no top-up or customer of the portal, and "
        f"none appeared within {NOT_OURS_PATIENCE}, so no balance was changed. If it concerns "
        "a developer's payment, adjust their balance by hand.",
    )
    return 200, "Set aside: not a portal payment."


def _finish(event_id: str, status: str, error: str = "") -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_EVENTS} SET status = %s, processed_at = %s, error = %s, "  # noqa: S608
            "attempts = attempts + 1 WHERE id = %s",
            [status, _now(), error[:2000], event_id],
        )


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
    from billing.tasks import card_save_from_setup

    account_id = (session.get("metadata") or {}).get("billing_account_id")
    setup_intent_id = _stripe_id(session.get("setup_intent"))
    if not account_id or not setup_intent_id:
        return  # not one of ours
    if not BillingAccount.objects.filter(pk=account_id).exists():
        return
    transaction.on_commit(lambda: card_save_from_setup.delay(int(account_id), setup_intent_id))


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
