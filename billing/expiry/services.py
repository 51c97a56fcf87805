"""Credit expiry: what is left of a lot at its expiry is debited as an EXPIRY ledger entry
(`expiry:<lot>`), once, whatever the number of runs or workers; the developer is warned 30, 7
and 1 days before."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing.audit import audit_log
from billing.expiry.lots import has_uncounted_entries, lots_count
from billing.ledger.entries import Actor, ledger_apply
from billing.locks import organization_settings_lock
from billing.models import (
    CreditLot,
    LedgerEntry,
    OrganizationSettings,
    SentNotification,
    TopUp,
    Wallet,
)
from billing.money import Money, money_format
from billing.notifications.once import notification_owe

WARN_DAYS = (30, 7, 1)  # days before expiry, most urgent last


@dataclass
class ExpiryRun:
    expired: int = 0  # lots that reached their expiry
    booked: list[LedgerEntry] = field(default_factory=list)  # the EXPIRY entries made
    warnings: list[str] = field(default_factory=list)  # the warnings owed (keys)


def credits_expire(*, as_of: datetime) -> ExpiryRun:
    """Count every wallet's new entries into its lots, expire the lots due by `as_of`, and owe
    the warnings of lots that expire within 30 days. Running it again changes nothing."""
    run = ExpiryRun()
    for wallet_id in wallets_uncounted():
        lots_count(wallet_id=wallet_id)
    due = CreditLot.objects.filter(expired_at__isnull=True, expires_at__lte=as_of)
    for wallet_id in sorted(set(due.values_list("wallet_id", flat=True))):
        _expire_wallet(wallet_id, as_of, run)
    run.warnings = expiry_warnings_owe(as_of=as_of)
    return run


def wallets_uncounted() -> list[int]:
    """The wallets with ledger entries their lots do not count yet."""
    uncounted = Wallet.objects.filter(has_uncounted_entries())
    return list(uncounted.order_by("id").values_list("id", flat=True))


def _expire_wallet(wallet_id: int, as_of: datetime, run: ExpiryRun) -> None:
    with transaction.atomic():
        lots_count(wallet_id=wallet_id)  # locks the wallet until the commit
        wallet = Wallet.objects.select_related("billing_account").get(pk=wallet_id)
        due = CreditLot.objects.filter(
            wallet_id=wallet_id, expired_at__isnull=True, expires_at__lte=as_of
        ).order_by("expires_at", "created_at", "id")
        booked = False
        for lot in due:
            run.expired += 1
            if lot.remaining == 0:  # spent before it expired
                CreditLot.objects.filter(pk=lot.id).update(expired_at=as_of)
                continue
            result = ledger_apply(
                account=wallet.billing_account,
                currency=wallet.currency,
                delta=-lot.remaining,
                kind=LedgerEntry.Kind.EXPIRY,
                transaction_id=f"expiry:{lot.id}",
                actor=Actor.system(),
                memo=_expiry_memo(lot, wallet.currency),
                lot_id=lot.id,
            )
            if not result.replayed:
                run.booked.append(result.entry)
                booked = True
        if booked:
            lots_count(wallet_id=wallet_id)  # counts the expiries: the lots are expired


def _expiry_memo(lot: CreditLot, currency: str) -> str:
    left = Money(lot.remaining, currency)
    return (
        f"{money_format(left)} of credit from {lot.created_at:%-d %b %Y} expired "
        f"on {lot.expires_at:%-d %b %Y}"
    )


def credit_lifetime_set(*, days: int, changed_by: User | None) -> bool:
    """The organisation's credit lifetime (0: credits never expire); True if it changed.
    Audited. A lot's expiry is fixed when its credit is counted, so every credit made so far
    is counted first, under the lifetime it was made under; the new one applies to credits
    from now on."""
    with transaction.atomic():
        # FOR UPDATE: every ledger write reads the settings FOR KEY SHARE, so none commits
        # between the count and the change (those in flight commit first, and are counted).
        org = organization_settings_lock()
        if org.credit_lifetime_days == days:
            return False
        for wallet_id in wallets_uncounted():
            lots_count(wallet_id=wallet_id)
        OrganizationSettings.objects.filter(pk=org.pk).update(
            credit_lifetime_days=days, updated_at=timezone.now()
        )
        audit_log(
            actor=changed_by,
            action="organization.credit_lifetime.set",
            old={"credit_lifetime_days": org.credit_lifetime_days},
            new={"credit_lifetime_days": days},
        )
    return True


def top_up_lot(*, top_up: TopUp) -> int | None:
    """The lot a top-up opened, for its refund or dispute to take back first (None if its
    credit only paid what the wallet owed). Counts the wallet's lots first."""
    wallet = Wallet.objects.filter(
        billing_account_id=top_up.billing_account_id, currency=top_up.currency
    ).first()
    if wallet is None or not top_up.ledger_transaction_id:
        return None
    lots_count(wallet_id=wallet.pk)
    return (
        CreditLot.objects.filter(credit_entry__transaction_id=top_up.ledger_transaction_id)
        .values_list("pk", flat=True)
        .first()
    )


def expiry_warning_key(wallet_id: int, day: date, days: int) -> str:
    return f"credit-expiry:{wallet_id}:{day.isoformat()}:{days}d"


def expiry_warnings_owe(*, as_of: datetime) -> list[str]:
    """Owe one warning per wallet and day (UTC) on which credit with money left expires
    within 30 days (several top-ups of one day make one email): the most urgent of 30, 7 and 1
    days reached (a run missed for a week does not send the 30-day one after the 7-day one).
    Each key is owed once, ever."""
    soon = CreditLot.objects.filter(
        expired_at__isnull=True,
        remaining__gt=0,
        expires_at__gt=as_of,
        expires_at__lte=as_of + timedelta(days=max(WARN_DAYS)),
    ).order_by("expires_at")
    first: dict[tuple[int, date], datetime] = {}  # the earliest expiry of each wallet's day
    for wallet_id, expires_at in soon.values_list("wallet_id", "expires_at"):
        assert expires_at is not None  # filtered above
        first.setdefault((wallet_id, expires_at.astimezone(UTC).date()), expires_at)
    keys = [
        expiry_warning_key(
            wallet_id, day, min(d for d in WARN_DAYS if expires_at - as_of <= timedelta(days=d))
        )
        for (wallet_id, day), expires_at in first.items()
    ]
    known = set(SentNotification.objects.filter(key__in=keys).values_list("key", flat=True))
    owed = [key for key in keys if key not in known]
    for key in owed:
        notification_owe(key=key, kind=SentNotification.Kind.CREDIT_EXPIRY, reference=key)
    return owed
