from __future__ import annotations

from django.db import models

from billing.money import MoneyProperty


class CreditLot(models.Model):
    """A credit's money, which expires (seed 003: "any purchased credits will expire after 1
    year"). The lots of a wallet add up to its balance when it is positive, and to nothing when
    it is negative: a credit first pays what the wallet owes, and only the rest is a lot.

    Lots are counted from the ledger after the fact (billing/expiry/lots.py), so the debit hot
    path writes nothing here: `Wallet.lots_counted_through` says up to which entry `remaining`
    is counted. Debits take from the lot that expires first (then the oldest); a refund or
    dispute takes from the lot of the top-up it concerns (`LedgerEntry.lot`) before any other.
    """

    wallet = models.ForeignKey("billing.Wallet", on_delete=models.PROTECT, related_name="lots")
    # The credit that opened it; None for the balance a wallet had when lots were introduced.
    # (One give-back may return money to several expired lots, each opening one: not 1:1.)
    credit_entry = models.ForeignKey(
        "billing.LedgerEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="opened_lots",
    )
    # Money given back (a failed refund, a won dispute) to a lot that had already expired
    # opens a new lot with the old one's expiry.
    given_back_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount = models.BigIntegerField()  # nanos the credit put into lots (after paying any debt)
    remaining = models.BigIntegerField()  # nanos left, as counted through the wallet's checkpoint
    created_at = models.DateTimeField()  # the credit's time
    expires_at = models.DateTimeField(null=True, blank=True)  # None: never
    # What refunds and disputes of this lot's payment took, from which lots, in order, net of
    # what was given back: [[lot id, nanos], …]. A failed refund or won dispute gives back there.
    taken_back = models.JSONField(default=list, blank=True)
    # Once expired: when, and the EXPIRY entry that took what was left (None if nothing was).
    expired_at = models.DateTimeField(null=True, blank=True)
    expiry_entry = models.OneToOneField(
        "billing.LedgerEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="expired_lot",
    )

    class Meta:
        ordering = ["wallet", "expires_at", "created_at", "id"]
        indexes = [
            # expire_credits' question, "which lots are due?", reads only lots not yet expired.
            models.Index(
                fields=["expires_at"],
                condition=models.Q(expired_at__isnull=True, expires_at__isnull=False),
                name="lot_expiry_due",
            ),
        ]

    amount_money = MoneyProperty("amount", currency="wallet.currency")
    remaining_money = MoneyProperty("remaining", currency="wallet.currency")

    def __str__(self) -> str:
        return f"lot {self.pk} of wallet {self.wallet_id}"
