"""Low-balance alerts: at 50 %, 20 % and 5 % of the balance after the last top-up, once per
crossing whatever the number of workers, re-armed by the next top-up; with the burn rate; a
banner until dismissed; none while auto-recharge works."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from http import HTTPStatus

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from billing.auto_recharge.charge import recharge_attempt_fail
from billing.auto_recharge.claim import auto_recharge_claim
from billing.auto_recharge.settings import auto_recharge_switch_off
from billing.ledger.entries import Actor, ledger_apply
from billing.ledger.selectors import wallet_daily_balances
from billing.ledger.services import wallet_credit, wallet_debit
from billing.models import (
    AuditLogEntry,
    AutoRecharge,
    BalanceAlert,
    LedgerEntry,
    OrganizationSettings,
    SentNotification,
    Wallet,
)
from billing.notifications.alerts import ALERTS_DONE, balance_alerts_shown
from tests.conftest import usd
from tests.factories import auto_recharge_on

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system()
_after_commit = {}


@pytest.fixture(autouse=True)
def _reactions(django_capture_on_commit_callbacks):
    """Each change commits on its own in production, and its reaction follows: run them so."""
    _after_commit["capture"] = django_capture_on_commit_callbacks


def _committed(change) -> None:
    if connection.in_atomic_block:  # the test's own transaction: run what follows a commit
        with _after_commit["capture"](execute=True):
            change()
    else:
        change()


def top_up(account, amount: str, tx: str) -> None:
    _committed(
        lambda: wallet_credit(account=account, money=usd(amount), transaction_id=tx, actor=SYSTEM)
    )


def spend(account, amount: str, tx: str) -> None:
    _committed(
        lambda: wallet_debit(account=account, money=usd(amount), transaction_id=tx, actor=SYSTEM)
    )


def thresholds(account) -> list[str]:
    alerts = BalanceAlert.objects.filter(wallet__billing_account=account).order_by("id")
    return [alert.threshold for alert in alerts]


def test_each_threshold_alerts_once_and_a_top_up_rearms_them(prepaid_account):
    account = prepaid_account
    top_up(account, "100", "t1")
    assert Wallet.objects.get(billing_account=account).alert_at == usd("50").nanos

    spend(account, "40", "d1")  # 60: nothing yet
    assert thresholds(account) == [] and mail.outbox == []
    spend(account, "15", "d2")  # 45: 50 %
    spend(account, "1", "d3")  # 44: nothing new
    spend(account, "29", "d4")  # 15: 20 %
    spend(account, "12", "d5")  # 3: 5 %
    spend(account, "1", "d6")  # 2: nothing new
    assert thresholds(account) == ["50%", "20%", "5%"]
    assert len(mail.outbox) == 3
    assert "$45.00" in mail.outbox[0].subject and "50% of what it was" in mail.outbox[0].body
    # $55 spent in the last 7 days: $7.857… a day, so $45 lasts 5 days; then $97: $13.857….
    assert "$7.85 a day" in mail.outbox[0].body and "lasts about 5 days" in mail.outbox[0].body
    assert "$13.85 a day" in mail.outbox[2].body and "lasts about 0 days" in mail.outbox[2].body
    assert Wallet.objects.get(billing_account=account).alert_at == ALERTS_DONE  # all crossed

    top_up(account, "100", "t2")  # 102: re-armed at 51
    assert Wallet.objects.get(billing_account=account).alert_at == usd("51").nanos
    spend(account, "52", "d7")  # 50: 50 % again, a new crossing
    assert thresholds(account) == ["50%", "20%", "5%", "50%"]
    assert len(mail.outbox) == 4
    call_command("check_ledger")


def test_a_fall_through_several_thresholds_is_one_email(prepaid_account):
    top_up(prepaid_account, "100", "t1")
    spend(prepaid_account, "97", "d1")
    crossed = thresholds(prepaid_account)
    assert len(crossed) == 3 and set(crossed) == {"50%", "20%", "5%"}
    assert len(mail.outbox) == 1 and "5% of what it was" in mail.outbox[0].body


def test_the_developers_own_amount_and_the_organisations_percentages(prepaid_account):
    OrganizationSettings.objects.update(balance_alert_percents="30")
    Wallet.objects.create(
        billing_account=prepaid_account, currency="USD", alert_amount=usd("80").nanos
    )
    top_up(prepaid_account, "100", "t1")
    spend(prepaid_account, "25", "d1")  # 75: the developer's $80
    spend(prepaid_account, "50", "d2")  # 25: 30 %
    assert thresholds(prepaid_account) == ["amount", "30%"]
    assert "the amount you asked to be alerted at ($80.00)" in mail.outbox[0].body


def test_no_alert_while_auto_recharge_works_but_after_it_failed(prepaid_account):
    auto_recharge_on(prepaid_account, threshold="1", amount="10")
    top_up(prepaid_account, "100", "t1")
    spend(prepaid_account, "60", "d1")
    spend(prepaid_account, "1", "d2")
    assert thresholds(prepaid_account) == [] and mail.outbox == []
    # Armed at nothing: a debit of a wallet that recharges itself queues no alert check.
    assert Wallet.objects.get(billing_account=prepaid_account).alert_at == ALERTS_DONE
    Wallet.objects.update(balance=usd("0.50").nanos)  # below the recharge threshold
    attempt = auto_recharge_claim(account_id=prepaid_account.pk, currency="USD", task_id="t")
    _committed(lambda: recharge_attempt_fail(attempt_id=attempt.pk, reason="card declined"))
    assert thresholds(prepaid_account) == ["50%", "20%", "5%"]  # at once, not at the next debit
    assert [m.subject for m in mail.outbox if "balance is low" in m.subject] == [
        "[Developer portal] Your USD balance is low: $0.50"
    ]


def test_switching_auto_recharge_off_arms_the_alerts_again(prepaid_account):
    auto_recharge_on(prepaid_account, threshold="1", amount="10")
    top_up(prepaid_account, "100", "t1")
    spend(prepaid_account, "60", "d1")
    assert thresholds(prepaid_account) == []
    _committed(lambda: auto_recharge_switch_off(AutoRecharge.objects.get(), "Switched off."))
    assert Wallet.objects.get(billing_account=prepaid_account).alert_at == usd("20").nanos
    assert thresholds(prepaid_account) == ["50%"]


def test_postpaid_wallets_are_not_alerted(developer):
    top_up(developer.billing_account, "100", "t1")
    spend(developer.billing_account, "99", "d1")
    assert thresholds(developer.billing_account) == [] and mail.outbox == []


def test_the_sweep_sends_what_a_lost_reaction_did_not_and_twice_changes_nothing(prepaid_account):
    top_up(prepaid_account, "100", "t1")
    Wallet.objects.filter(billing_account=prepaid_account).update(
        alert_at=None, balance=usd("10").nanos
    )
    call_command("send_balance_alerts")
    call_command("send_balance_alerts")
    assert set(thresholds(prepaid_account)) == {"20%", "50%"}
    assert SentNotification.objects.filter(kind="BALANCE_ALERT").count() == 1
    assert mail.outbox == []  # the first 5 minutes are its own task's
    SentNotification.objects.update(created_at=timezone.now() - timedelta(minutes=6))
    call_command("send_balance_alerts")
    call_command("send_balance_alerts")
    assert [m.subject for m in mail.outbox] == [
        "[Developer portal] Your USD balance is low: $10.00"
    ]


def test_the_banner_is_one_query_and_shows_the_current_alert_after_many_old_ones(
    client, prepaid_account, django_assert_num_queries
):
    balance = Decimal(0)
    for n in range(12):  # each round's 50 % alert, never dismissed, then replaced by a top-up
        top_up(prepaid_account, "100", f"t{n}")
        balance += 100
        spent = (balance * 6 / 10).quantize(Decimal("0.01"))  # to 40 % of it
        spend(prepaid_account, str(spent), f"d{n}")
        balance -= spent
    assert list(BalanceAlert.objects.values_list("threshold", flat=True)) == ["50%"] * 12
    with django_assert_num_queries(1):
        [shown] = balance_alerts_shown(user_id=prepaid_account.user_id)
    assert shown.top_up_entry_id == LedgerEntry.objects.filter(kind="TOP_UP").latest("id").pk
    client.force_login(prepaid_account.user)
    assert 'data-testid="balance-alert"' in client.get(reverse("my_balance")).content.decode()


def test_the_banner_shows_until_dismissed_and_only_its_owner_dismisses(
    client, prepaid_account, other_developer, admin_without_permission, portal_admin
):
    top_up(prepaid_account, "100", "t1")
    spend(prepaid_account, "60", "d1")
    alert = BalanceAlert.objects.get()
    dismiss = reverse("balance_alert_dismiss", args=[alert.pk])
    client.force_login(prepaid_account.user)
    page = client.get(reverse("my_plans")).content.decode()
    assert 'data-testid="balance-alert"' in page and "$40.00" in page and "lasts about" in page

    for someone_else in (other_developer, admin_without_permission, portal_admin):
        client.force_login(someone_else)  # not theirs: as if it did not exist
        assert client.post(dismiss).status_code == HTTPStatus.NOT_FOUND
    assert BalanceAlert.objects.get().dismissed_at is None
    client.logout()
    assert client.post(dismiss).status_code == HTTPStatus.FOUND  # to sign in
    client.force_login(prepaid_account.user)
    assert client.get(dismiss).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    response = client.post(dismiss, {"next": reverse("my_plans")})
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == reverse("my_plans")
    assert 'data-testid="balance-alert"' not in client.get(reverse("my_plans")).content.decode()
    off_site = client.post(dismiss, {"next": "https://evil.example/"})
    assert off_site["Location"] == reverse("my_balance")


def test_a_top_up_hides_the_banner(client, prepaid_account):
    top_up(prepaid_account, "100", "t1")
    spend(prepaid_account, "60", "d1")
    client.force_login(prepaid_account.user)
    assert 'data-testid="balance-alert"' in client.get(reverse("my_balance")).content.decode()
    top_up(prepaid_account, "5", "t2")
    assert 'data-testid="balance-alert"' not in client.get(reverse("my_balance")).content.decode()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twenty_concurrent_debits_alert_each_threshold_once(postgres, prepaid_account):
    top_up(prepaid_account, "100", "t1")
    barrier = threading.Barrier(20)

    def debit(n: int) -> None:
        try:
            barrier.wait()
            spend(prepaid_account, "4.90", f"d{n}")  # the reaction runs in this thread
        finally:
            connection.close()

    threads = [threading.Thread(target=debit, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Wallet.objects.get(billing_account=prepaid_account).balance == usd("2").nanos
    crossed = thresholds(prepaid_account)
    assert len(crossed) == 3 and set(crossed) == {"50%", "20%", "5%"}
    keys = list(SentNotification.objects.filter(kind="BALANCE_ALERT").values_list("key", flat=True))
    assert 1 <= len(keys) <= 3 and len(mail.outbox) == len(keys)
    call_command("check_ledger")


def test_the_balance_page_shows_the_burn_rate_days_left_and_a_30_day_chart(client, prepaid_account):
    top_up(prepaid_account, "70", "t1")
    spend(prepaid_account, "14", "d1")  # $2 a day over 7 days: $56 lasts 28 days
    client.force_login(prepaid_account.user)
    page = client.get(reverse("my_balance")).content.decode()
    assert "Average daily spend over the last 7 days: <strong>$2.00</strong>" in page
    assert "lasts about <strong>28 days</strong>" in page and "<polyline points=" in page
    balances = wallet_daily_balances(wallet=Wallet.objects.get(billing_account=prepaid_account))
    assert len(balances) == 30 and balances[-1][1] == usd("56").nanos
    assert [nanos for _, nanos in balances[:-1]] == [0] * 29


def test_a_postpaid_balance_page_has_no_spending_panel(client, developer):
    top_up(developer.billing_account, "10", "t1")
    client.force_login(developer)
    assert 'data-testid="spending"' not in client.get(reverse("my_balance")).content.decode()


@pytest.mark.parametrize(
    ("role", "status"),
    [("anonymous", 302), ("owner", 302), ("other_developer", 404),
     ("admin_without_permission", 404), ("portal_admin", 404)],
)  # fmt: skip
def test_the_own_alert_amount_as_each_role(client, request, prepaid_account, role, status):
    top_up(prepaid_account, "100", "t1")
    if role == "owner":
        client.force_login(prepaid_account.user)
    elif role != "anonymous":
        client.force_login(request.getfixturevalue(role))
    response = client.post(reverse("alert_amount", args=["USD"]), {"amount": "75"})
    assert response.status_code == status
    wallet = Wallet.objects.get(billing_account=prepaid_account)
    if role == "owner":
        assert response["Location"] == reverse("my_balance")
        assert (wallet.alert_amount, wallet.alert_at) == (usd("75").nanos, usd("75").nanos)
    else:
        assert wallet.alert_amount is None


def test_a_bad_alert_amount_is_refused_and_nothing_changes(client, prepaid_account):
    top_up(prepaid_account, "100", "t1")
    client.force_login(prepaid_account.user)
    for text in ("abc", "-5", "0"):
        response = client.post(reverse("alert_amount", args=["USD"]), {"amount": text}, follow=True)
        assert 'class="message error"' in response.content.decode(), text
    assert Wallet.objects.get(billing_account=prepaid_account).alert_amount is None


def test_admins_set_the_percentages_and_history_limit(client, portal_admin, prepaid_account):
    top_up(prepaid_account, "100", "t1")
    client.force_login(portal_admin)
    url = reverse("monetization_settings")
    form = {
        "section": "statements",
        "balance_alert_percents": "10 %, 30",
        "billing_history_months": "24",
        "credit_lifetime_days": "365",
    }
    assert client.post(url, form).status_code == HTTPStatus.FOUND
    org = OrganizationSettings.objects.get()
    assert (org.balance_alert_percents, org.billing_history_months) == ("30,10", 24)
    assert AuditLogEntry.objects.filter(action="organization.statement_settings.set").exists()
    assert Wallet.objects.get(billing_account=prepaid_account).alert_at is None  # re-armed by:
    call_command("send_balance_alerts")
    assert Wallet.objects.get(billing_account=prepaid_account).alert_at == usd("30").nanos
    bad = client.post(url, {**form, "balance_alert_percents": "0, 150"})
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert "between 1 and 99" in bad.content.decode()
    assert OrganizationSettings.objects.get().balance_alert_percents == "30,10"


def test_a_refund_is_not_spending_and_alerts_nothing(prepaid_account):
    top_up(prepaid_account, "100", "t1")
    _committed(
        lambda: ledger_apply(
            account=prepaid_account,
            currency="USD",
            delta=-usd("80").nanos,
            kind=LedgerEntry.Kind.REFUND,
            transaction_id="refund:ch_1:8000",
            actor=SYSTEM,
        )  # fmt: skip
    )
    assert thresholds(prepaid_account) == [] and mail.outbox == []
    spend(prepaid_account, "1", "d1")  # spending finds the thresholds the balance is below
    assert set(thresholds(prepaid_account)) == {"50%", "20%"} and len(mail.outbox) == 1
