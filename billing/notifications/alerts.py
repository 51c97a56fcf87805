"""Low-balance alerts (seed 002: "threshold alerts at 50%, 20%, and 5% of remaining balance").

A prepaid wallet's thresholds are the organisation's percentages of its balance right after its
last top-up, and the developer's own amount. The ledger's statement tells when a debit takes the
balance to the next armed threshold (`Wallet.alert_at`), and a top-up re-arms them; then
`balance_alerts_check` records each threshold crossed once per top-up (a unique row: whatever the
number of workers, one of them records it), owes one email for the lowest new one, and arms the
next threshold. The email and the banner say the burn rate (average daily spend over the last 7
days) and how long the balance lasts at that rate. A wallet whose auto-recharge is on is not
alerted unless its last recharge failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, OuterRef, Q, Subquery, Sum
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from billing.billing_accounts.selectors import billing_type_effective, organization_settings_get
from billing.models import (
    AutoRecharge,
    BalanceAlert,
    BillingType,
    LedgerEntry,
    SentNotification,
    Wallet,
)
from billing.money import Money, currency_decimals
from billing.notifications.once import (
    notification_owe,
    notification_send_once,
    notifications_unsent,
)

BURN_DAYS = 7
SPENDING = (LedgerEntry.Kind.USAGE, LedgerEntry.Kind.FEE)
# `Wallet.alert_at` when nothing is armed until something changes (a top-up, new thresholds,
# auto-recharge switched or failing): no balance is that low, so no debit reaches it. NULL is
# kept for "not armed yet", which the sweep arms.
ALERTS_DONE = -(2**63)
DEFAULT_PERCENTS = [50, 20, 5]


@dataclass(frozen=True)
class Threshold:
    label: str  # "50%" or "amount"
    nanos: int


def alert_percents(text: str) -> list[int]:
    """The organisation's percentages ("50,20,5"), highest first; ValueError if malformed."""
    percents = sorted({int(part) for part in text.split(",") if part.strip()}, reverse=True)
    if not percents or not all(0 < p < 100 for p in percents):
        raise ValueError("Give percentages between 1 and 99, separated by commas, e.g. 50, 20, 5.")
    return percents


def organization_alert_percents() -> list[int]:
    """The organisation's percentages, highest first (the defaults should the stored text be
    malformed: the settings form refuses such text, a hand-edited row may not)."""
    try:
        return alert_percents(organization_settings_get().balance_alert_percents)
    except ValueError:
        return DEFAULT_PERCENTS


def burn_rate(wallet: Wallet) -> int:
    """Average daily spend (usage and fees) over the last 7 days, in nanos."""
    since = timezone.now() - timedelta(days=BURN_DAYS)
    spent = LedgerEntry.objects.filter(
        wallet=wallet, kind__in=SPENDING, amount__lt=0, created_at__gte=since
    ).aggregate(total=Sum("amount"))["total"]
    return -(spent or 0) // BURN_DAYS


def days_left(balance: int, rate: int) -> int | None:
    """Whole days the balance lasts at `rate` a day; None when nothing is being spent."""
    if rate <= 0:
        return None
    return max(balance, 0) // rate


def balance_alerts_check(*, account_id: int, currency: str) -> list[BalanceAlert]:
    """Record the thresholds the wallet's balance has crossed since its last top-up (each once),
    owe one email for the lowest new one, and arm the next threshold. The new alerts, the
    lowest (the one emailed) first."""
    with transaction.atomic():
        wallet = (
            Wallet.objects.select_for_update(of=("self",))
            .select_related("billing_account")
            .filter(billing_account_id=account_id, currency=currency)
            .first()
        )
        if wallet is None:
            return []
        top_up = _last_top_up(wallet)
        if top_up is None or not _prepaid(wallet) or _recharges_itself(wallet):
            # Auto-recharge tops it up: no alert. A failed recharge or a switch-off disarms
            # the wallet (billing/auto_recharge/), and so has it checked again.
            _arm(wallet, ALERTS_DONE)
            return []
        thresholds = _thresholds(wallet, top_up.balance_after)
        waiting = [t.nanos for t in thresholds if wallet.balance > t.nanos]
        _arm(wallet, max(waiting, default=ALERTS_DONE))
        crossed = [t for t in thresholds if wallet.balance <= t.nanos]
        new = sorted(_record(wallet, top_up.pk, crossed), key=lambda a: a.threshold_nanos)
        if new:  # one email a crossing: the lowest threshold it reached
            notification_owe(
                key=alert_key(new[0].pk),
                kind=SentNotification.Kind.BALANCE_ALERT,
                reference=str(new[0].pk),
            )
        return new


def alert_amount_set(*, wallet: Wallet, amount: Money | None) -> None:
    """The developer's own amount to be alerted at (None: none). Disarms the wallet until
    `balance_alerts_check` arms it again with the new thresholds (the caller asks a worker;
    the sweep re-arms it otherwise)."""
    Wallet.objects.filter(pk=wallet.pk).update(
        alert_amount=amount.nanos if amount is not None else None, alert_at=None
    )


def alert_key(alert_id: int) -> str:
    return f"balance-alert:{alert_id}"


def _last_top_up(wallet: Wallet) -> LedgerEntry | None:
    # One index step (ledger_wallet_top_ups).
    top_ups = LedgerEntry.objects.filter(wallet=wallet, kind=LedgerEntry.Kind.TOP_UP)
    return top_ups.order_by("-id").first()


def _prepaid(wallet: Wallet) -> bool:
    return billing_type_effective(account=wallet.billing_account) == BillingType.PREPAID


def _thresholds(wallet: Wallet, base: int) -> list[Threshold]:
    thresholds = [Threshold(f"{p}%", base * p // 100) for p in organization_alert_percents()]
    if wallet.alert_amount is not None:
        thresholds.append(Threshold("amount", wallet.alert_amount))
    return thresholds


def _recharges_itself(wallet: Wallet) -> bool:
    recharge = AutoRecharge.objects.filter(
        billing_account_id=wallet.billing_account_id, currency=wallet.currency, enabled=True
    ).first()
    return recharge is not None and recharge.consecutive_failures == 0


def _arm(wallet: Wallet, alert_at: int) -> None:
    if wallet.alert_at != alert_at:
        Wallet.objects.filter(pk=wallet.pk).update(alert_at=alert_at)
        wallet.alert_at = alert_at


def _record(wallet: Wallet, top_up_entry_id: int, crossed: list[Threshold]) -> list[BalanceAlert]:
    if not crossed:
        return []
    rate = burn_rate(wallet)
    new = []
    for threshold in crossed:
        alert, created = BalanceAlert.objects.get_or_create(
            wallet=wallet,
            top_up_entry_id=top_up_entry_id,
            threshold=threshold.label,
            defaults={
                "threshold_nanos": threshold.nanos,
                "balance_nanos": wallet.balance,
                "burn_rate_nanos": rate,
            },
        )
        if created:
            new.append(alert)
    return new


def balance_alert_email(*, alert_id: int) -> bool:
    """Email the developer the alert, once (the claim decides between senders). Not sent if
    a top-up came first or the developer dismissed it."""
    alert = (
        BalanceAlert.objects.select_related("wallet__billing_account__user")
        .filter(pk=alert_id, dismissed_at__isnull=True)
        .first()
    )
    if alert is None or not alert_current(alert):
        return False
    user = alert.wallet.billing_account.user
    context = alert_context(alert)
    context["name"] = user.get_full_name() or user.email
    currency = alert.wallet.currency
    context["add_credit"] = settings.PORTAL_BASE_URL + reverse("add_credit", args=[currency])
    body = render_to_string("emails/billing/balance_alert.txt", context).strip() + "\n"
    subject = f"[Developer portal] Your {currency} balance is low: {context['balance']}"

    def send() -> None:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])

    return notification_send_once(key=alert_key(alert.pk), recipient=user.email, send=send)


def alert_current(alert: BalanceAlert) -> bool:
    """Still about the wallet's last top-up (a newer one re-armed the thresholds)."""
    top_up = _last_top_up(alert.wallet)
    return top_up is not None and top_up.pk == alert.top_up_entry_id


def alert_context(alert: BalanceAlert, *, now: bool = False) -> dict[str, object]:
    """What the email says (the balance when the threshold was crossed), or with `now` what
    the banner says (the balance as it is now)."""
    currency = alert.wallet.currency
    balance = alert.wallet.balance if now else alert.balance_nanos
    return {
        "currency": currency,
        "balance": Money(balance, currency),
        "threshold": alert.threshold,
        "threshold_money": Money(alert.threshold_nanos, currency),
        "burn_rate": to_cents(Money(alert.burn_rate_nanos, currency)),
        "days_left": days_left(balance, alert.burn_rate_nanos),
    }


def to_cents(money: Money) -> Money:
    """For reading: an average to the currency's usual decimals (rounded down)."""
    step = 10 ** (9 - currency_decimals(money.currency))
    return Money(money.nanos - money.nanos % step, money.currency)


def balance_alerts_shown(*, user_id: int) -> list[BalanceAlert]:
    """The banner's alerts: per wallet, the lowest not dismissed of its last top-up's."""
    last_top_up = LedgerEntry.objects.filter(
        wallet=OuterRef("wallet_id"), kind=LedgerEntry.Kind.TOP_UP
    ).order_by("-id")  # one index step (ledger_wallet_top_ups)
    alerts = (
        BalanceAlert.objects.select_related("wallet")
        .filter(
            wallet__billing_account__user_id=user_id,
            dismissed_at__isnull=True,
            top_up_entry_id=Subquery(last_top_up.values("id")[:1]),
        )
        .order_by("wallet_id", "threshold_nanos")
    )
    shown: dict[int, BalanceAlert] = {}
    for alert in alerts:  # a wallet's current alerts: at most one a threshold
        shown.setdefault(alert.wallet_id, alert)
    return list(shown.values())


def balance_alert_dismiss(*, user_id: int, alert_id: int) -> bool:
    """Dismiss the alert (and the others of its wallet's crossing); False if not theirs."""
    alert = BalanceAlert.objects.filter(
        pk=alert_id, wallet__billing_account__user_id=user_id
    ).first()
    if alert is None:
        return False
    BalanceAlert.objects.filter(
        wallet_id=alert.wallet_id,
        top_up_entry_id=alert.top_up_entry_id,
        dismissed_at__isnull=True,
    ).update(dismissed_at=timezone.now())
    return True


def wallets_alert_due() -> list[tuple[int, str]]:
    """(account, currency) of the wallets at or below their armed alert, and of those never
    armed that have had a top-up: for the beat's sweep, which catches a lost reaction."""
    due = Wallet.objects.filter(
        Q(alert_at__isnull=False, balance__lte=F("alert_at"))
        | Q(alert_at__isnull=True, last_credit_at__isnull=False)
    )
    return list(due.order_by("id").values_list("billing_account_id", "currency"))


def balance_alert_emails_unsent() -> list[int]:
    """Alerts whose email is owed and free to send (its task lost, gave up or died), from the
    last 3 days, leaving the last 5 minutes' to their own task."""
    now = timezone.now()
    owed = notifications_unsent(
        created_after=now - timedelta(days=3), created_before=now - timedelta(minutes=5)
    )
    return [int(ref) for kind, ref in owed if kind == SentNotification.Kind.BALANCE_ALERT]


def balance_alerts_sweep() -> int:
    """The beat's and `send_balance_alerts`' work: check the wallets whose reaction was lost
    and send the emails owed but not sent. Returns how many emails it sent."""
    for account_id, currency in wallets_alert_due():
        balance_alerts_check(account_id=account_id, currency=currency)
    return sum(balance_alert_email(alert_id=alert_id) for alert_id in balance_alert_emails_unsent())
