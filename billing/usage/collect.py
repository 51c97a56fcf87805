"""Owed usage, paid when money comes in. A prepaid wallet at its floor still has its usage
rated; what it could not pay is kept on the wallet (`Wallet.usage_owed`). A credit to such a
wallet states `MoneyCredited` (the ledger's own statement says the wallet owes), and a worker
then pays what the wallet holds above its floor, as one usage debit."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.db.models import F

from billing.exceptions import InsufficientFunds
from billing.ledger.entries import Actor, Kind, prepaid_floor
from billing.ledger.services import wallet_debit
from billing.locks import organization_settings_hold, owed_usage_lock
from billing.models import BillingAccount, Wallet
from billing.money import Money


def usage_owed_add(*, account: BillingAccount, money: Money) -> None:
    """Keep `money` of rated usage as owed by the account's wallet in its currency (in the
    batch's transaction, so it is owed exactly when its events are stored)."""
    Wallet.objects.bulk_create(
        [Wallet(billing_account=account, currency=money.currency)], ignore_conflicts=True
    )
    Wallet.objects.filter(billing_account=account, currency=money.currency).update(
        usage_owed=F("usage_owed") + money.nanos
    )


def usage_owed_collect(*, account_id: int, currency: str) -> Money:
    """Pay what the wallet owes for usage from what it holds above its floor; the rest stays
    owed. Returns what was paid. The debit and the lower amount owed commit together, and
    collectors of one account take turns, so nothing owed is paid twice."""
    with transaction.atomic():
        organization_settings_hold()
        owed_usage_lock(account_id=account_id)
        wallet = Wallet.objects.filter(billing_account_id=account_id, currency=currency).first()
        if wallet is None or wallet.usage_owed <= 0:
            return Money(0, currency)
        account = BillingAccount.objects.get(pk=account_id)
        floor = prepaid_floor(account, currency)
        payable = (
            wallet.usage_owed if floor is None else min(wallet.usage_owed, wallet.balance - floor)
        )
        if payable <= 0:
            return Money(0, currency)
        paid = Money(payable, currency)
        try:
            wallet_debit(
                account=account,
                money=paid,
                transaction_id=f"usage-owed:{uuid.uuid4()}",
                actor=Actor.system(),
                kind=Kind.USAGE,
                memo=f"Usage owed, paid from the balance ({paid} of {wallet.usage_owed_money})",
            )
        except InsufficientFunds:
            return Money(0, currency)  # a debit took the money meanwhile: the next credit pays
        Wallet.objects.filter(pk=wallet.pk).update(usage_owed=F("usage_owed") - payable)
    return paid
