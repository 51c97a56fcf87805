"""Reads of billing state: effective billing types, People, history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet, Value
from django.db.models.functions import Coalesce, NullIf

from accounts.models import User
from billing.models import BillingAccount, BillingType, BillingTypeChange, OrganizationSettings


def organization_settings_get() -> OrganizationSettings:
    settings, _ = OrganizationSettings.objects.get_or_create(pk=OrganizationSettings.SINGLETON_ID)
    return settings


def billing_type_effective(*, account: BillingAccount, default: str | None = None) -> str:
    """The developer's own billing type, else the organisation's default (read if not given)."""
    return account.billing_type or default or organization_settings_get().default_billing_type


def billing_type_label(*, account: BillingAccount, default: str) -> str:
    """How My Account names the billing type, e.g. "Not specified (defaults to Postpaid)"."""
    if account.billing_type:
        return BillingType(account.billing_type).label
    return f"Not specified (defaults to {BillingType(default).label})"


def developers_list(*, search: str = "") -> QuerySet[User]:
    """Developers (not staff) with `effective_billing_type` and `own_billing_type` annotated,
    and their wallets prefetched (one query per page)."""
    from billing.models import Wallet

    default = organization_settings_get().default_billing_type
    people = (
        User.objects.filter(is_staff=False)
        .select_related("billing_account")
        .prefetch_related(
            Prefetch("billing_account__wallets", queryset=Wallet.objects.order_by("currency"))
        )
        .annotate(
            own_billing_type=Coalesce("billing_account__billing_type", Value("")),
            effective_billing_type=Coalesce(
                NullIf("billing_account__billing_type", Value("")), Value(default)
            ),
        )
        .order_by("last_name", "first_name", "email")
    )
    for word in search.split():
        people = people.filter(
            Q(email__icontains=word)
            | Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
            | Q(billing_account__legal_company_name__icontains=word)
        )
    return people


@dataclass(frozen=True)
class BillingTypeCounts:
    following_default: int
    prepaid: int
    postpaid: int

    def effective(self, default: str) -> dict[str, int]:
        """How many developers each billing type would cover if `default` were the default."""
        return {
            BillingType.PREPAID: self.prepaid
            + (self.following_default if default == BillingType.PREPAID else 0),
            BillingType.POSTPAID: self.postpaid
            + (self.following_default if default == BillingType.POSTPAID else 0),
        }


def billing_type_counts() -> BillingTypeCounts:
    developers = User.objects.filter(is_staff=False)
    counts = developers.aggregate(
        prepaid=Count("pk", filter=Q(billing_account__billing_type=BillingType.PREPAID)),
        postpaid=Count("pk", filter=Q(billing_account__billing_type=BillingType.POSTPAID)),
        total=Count("pk"),
    )
    return BillingTypeCounts(
        following_default=counts["total"] - counts["prepaid"] - counts["postpaid"],
        prepaid=counts["prepaid"],
        postpaid=counts["postpaid"],
    )


def billing_type_history(*, account: BillingAccount) -> QuerySet[BillingTypeChange]:
    return account.billing_type_changes.select_related("changed_by")


@dataclass(frozen=True)
class LedgerMismatch:
    wallet_id: int
    currency: str
    owner: str
    balance: int
    entries_sum: int


def ledger_mismatches() -> list[LedgerMismatch]:
    """Wallets whose cached balance differs from the sum of their ledger entries."""
    from django.db.models import Sum

    from billing.models import Wallet

    wallets = (
        Wallet.objects.annotate(entries_sum=Coalesce(Sum("entries__amount"), Value(0)))
        .select_related("billing_account__user")
        .order_by("id")
    )
    return [
        LedgerMismatch(
            w.pk, w.currency, w.billing_account.user.email, w.balance, int(w.entries_sum)
        )
        for w in wallets.iterator(chunk_size=2000)
        if int(w.entries_sum) != w.balance
    ]


def wallets_balance(*, account: BillingAccount, as_of: Any = None) -> list[dict[str, Any]]:
    """Seed 004's `wallets` list, one per currency in the order they were opened.

    `as_of`: a ledger entry; the wallets are shown as they stood right after it (balance of the
    last entry up to it, last top-up up to it), so a replayed request gets the first answer.
    """
    from django.db.models import OuterRef, Subquery

    from billing.models import LedgerEntry, Wallet
    from billing.money import Money, money_to_apigee

    wallets = Wallet.objects.filter(billing_account=account).order_by("id")
    if as_of is not None:
        upto = LedgerEntry.objects.filter(wallet=OuterRef("pk"), id__lte=as_of.pk).order_by("-id")
        wallets = wallets.annotate(
            balance_then=Subquery(upto.values("balance_after")[:1]),
            credit_then=Subquery(
                upto.filter(kind=LedgerEntry.Kind.TOP_UP).values("created_at")[:1]
            ),
        ).filter(  # a wallet opened before the change and still empty then stood at zero
            Q(balance_then__isnull=False) | Q(created_at__lte=as_of.created_at)
        )
    result = []
    for wallet in wallets:
        balance, credited = wallet.balance, wallet.last_credit_at
        if as_of is not None:
            # Annotated above with the wallet as it stood after `as_of`.
            balance, credited = getattr(wallet, "balance_then"), getattr(wallet, "credit_then")  # noqa: B009
            balance = balance or 0
        item: dict[str, Any] = {"balance": money_to_apigee(Money(balance, wallet.currency))}
        if credited:
            item["lastCreditTime"] = str(int(credited.timestamp() * 1000))
        result.append(item)
    return result


def wallets_for(*, account: BillingAccount) -> list[Any]:
    from billing.models import Wallet

    return list(Wallet.objects.filter(billing_account=account).order_by("id"))


def ledger_history(*, account: BillingAccount, kind: str = "") -> QuerySet[Any]:
    """The account's ledger entries, newest first; one query per page whatever its length."""
    from billing.models import LedgerEntry

    entries = (
        LedgerEntry.objects.filter(wallet__billing_account=account)
        .select_related("wallet", "actor_user", "actor_token")
        .order_by("-id")
    )
    if kind:
        entries = entries.filter(kind=kind)
    return entries


@dataclass(frozen=True)
class RechargePreview:
    """The auto-recharge a balance change would set off: the developer's saved card is charged."""

    threshold: Any  # Money
    amount: Any  # Money: what the claim would charge with today's settings and limits
    card: str  # e.g. "Visa •••• 4242"


def recharge_preview(*, account: BillingAccount, change: Any) -> RechargePreview | None:
    """What confirming `change` (Money) would charge through auto-recharge, or None: the
    claim's own decision (recharge_due) at the balance the change leaves."""
    from django.utils import timezone

    from billing.auto_recharge import recharge_due, runaway_guard_until
    from billing.models import AutoRecharge, Wallet
    from billing.money import Money

    recharge = (
        AutoRecharge.objects.select_related("billing_account")
        .filter(billing_account=account, currency=change.currency)
        .first()
    )
    if recharge is None:
        return None
    wallet = Wallet.objects.filter(billing_account=account, currency=change.currency).first()
    after = (wallet.balance if wallet else 0) + change.nanos
    now = timezone.now()
    # The runaway guard would switch it off instead of charging.
    amount = recharge_due(
        recharge,
        balance=after,
        now=now,
        runaway=lambda: runaway_guard_until(recharge, now) is not None,
    )
    if amount is None:
        return None
    return RechargePreview(
        threshold=Money(recharge.threshold, change.currency),
        amount=Money(amount, change.currency),
        card=f"{account.card_brand.title()} •••• {account.card_last4}",
    )


@dataclass(frozen=True)
class CurrencyRemoval:
    """A currency whose Add credit limits are about to be removed, and who notices."""

    currency: str
    auto_recharges_on: int  # developers whose auto-recharge in it stops
    wallets_with_money: int  # balances stay and can still be spent


def top_up_currency_removals(*, kept: list[str]) -> list[CurrencyRemoval]:
    """The currencies offered now that a save keeping only `kept` would stop offering."""
    from billing.models import AutoRecharge, TopUpLimit, Wallet

    removed = TopUpLimit.objects.exclude(currency__in=kept).values_list("currency", flat=True)
    return [
        CurrencyRemoval(
            currency=currency,
            auto_recharges_on=AutoRecharge.objects.filter(currency=currency, enabled=True).count(),
            wallets_with_money=Wallet.objects.filter(currency=currency).exclude(balance=0).count(),
        )
        for currency in removed
    ]


def adjustment_currencies(*, account: BillingAccount) -> list[str]:
    """Currencies an admin may adjust in: those the organisation offers and the account's
    wallets' (a currency no longer offered may still hold a balance)."""
    from billing.models import TopUpLimit, Wallet

    offered = TopUpLimit.objects.values_list("currency", flat=True)
    held = Wallet.objects.filter(billing_account=account).values_list("currency", flat=True)
    return sorted({*offered, *held})
