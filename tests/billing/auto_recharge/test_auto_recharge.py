"""Auto-recharge in-process (Celery eager), offline mode: the settings, the trigger, the claim,
declines, the runaway guard and the monthly cap. The real worker and Redis are in tests/celery."""

from __future__ import annotations

import re
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from billing.auto_recharge.charge import auto_recharge_charge
from billing.auto_recharge.claim import auto_recharge_claim
from billing.auto_recharge.selectors import auto_recharge_due
from billing.auto_recharge.settings import auto_recharge_configure
from billing.billing_type.services import billing_type_set
from billing.exceptions import BillingError
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit, wallet_debit
from billing.models import (
    AutoRecharge,
    BillingTypeChange,
    LedgerEntry,
    RechargeAttempt,
    TopUp,
    TopUpLimit,
    Wallet,
)
from billing.money import money_parse
from billing.offline import offline_setup_event
from billing.payments.cards import card_save
from billing.tasks import auto_recharge_sweep
from billing.webhooks.receive import webhook_receive
from tests.conftest import NANOS_PER_UNIT, usd

pytestmark = pytest.mark.django_db

VISA = "pm_offline_visa_4242"
DECLINED = "pm_offline_visa_0002"


@pytest.fixture
def account(prepaid_account):
    account = prepaid_account
    card_save(account=account, payment_method_id=VISA, brand="visa", last4="4242")
    account.refresh_from_db()
    wallet_credit(account=account, money=usd("100"), transaction_id="opening", actor=Actor.system())
    return account


@pytest.fixture(autouse=True)
def after_commit(django_capture_on_commit_callbacks):
    """The tests run inside a transaction that never commits: run on-commit work (the
    recharge the debit asks for) when each service call returns, as a commit would."""
    global _committing
    _committing = lambda: django_capture_on_commit_callbacks(execute=True)  # noqa: E731
    yield
    _committing = None


_committing = None


def enable(account, threshold="20", amount="50", mode="FIXED", cap=None):
    with _committing():
        return _configure(account, threshold, amount, mode, cap)


def _configure(account, threshold, amount, mode, cap):
    return auto_recharge_configure(
        account=account,
        currency="USD",
        enabled=True,
        threshold=usd(threshold),
        mode=mode,
        amount=usd(amount),
        monthly_cap=usd(cap) if cap else None,
        changed_by=account.user,
    )


def balance(account) -> int:
    return Wallet.objects.get(billing_account=account, currency="USD").balance


def debit(account, amount: str, tid: str):
    with _committing():
        return wallet_debit(
            account=account, money=usd(amount), transaction_id=tid, actor=Actor.system()
        )


def test_debit_below_threshold_recharges_once(account):
    enable(account)
    debit(account, "85", "d1")  # 100 - 85 = 15 < 20
    assert balance(account) == 65 * 10**9
    attempt = RechargeAttempt.objects.get()
    assert attempt.state == RechargeAttempt.State.SUCCEEDED and attempt.amount == 50 * 10**9
    credit = LedgerEntry.objects.get(kind=LedgerEntry.Kind.TOP_UP, memo="Auto-recharge")
    assert credit.transaction_id == attempt.stripe_payment_intent_id
    assert TopUp.objects.get(source=TopUp.Source.AUTO_RECHARGE).state == TopUp.State.SUCCEEDED
    debit(account, "10", "d2")  # 55: above the threshold, nothing more
    assert RechargeAttempt.objects.count() == 1


def test_debit_above_threshold_does_not_recharge(account):
    enable(account)
    debit(account, "80", "d1")  # exactly 20 left: not below
    assert not RechargeAttempt.objects.exists()


def test_top_up_to_target(account):
    enable(account, threshold="20", amount="100", mode="TARGET")
    debit(account, "95", "d1")  # 5 left → top up by 95 to 100
    assert RechargeAttempt.objects.get().amount == 95 * 10**9
    assert balance(account) == 100 * 10**9
    debit(account, "99", "d2")  # 1 left → 99 brings it back to the target
    assert balance(account) == 100 * 10**9


def test_top_up_to_target_rounds_fractions_of_a_cent_up(account):
    """Usage is metered in nanos; Stripe charges whole cents."""
    enable(account, threshold="20", amount="50", mode="TARGET")
    debit(account, "80.0013", "d1")  # 19.9987 left: 30.0013 short of the target
    attempt = RechargeAttempt.objects.get()
    assert attempt.state == RechargeAttempt.State.SUCCEEDED
    assert attempt.amount == usd("30.01").nanos
    assert balance(account) == usd("50.0087").nanos


@pytest.mark.parametrize(
    "mode, saved_amount",
    [
        ("TARGET", "20.20"),  # 0.25 short of the target
        ("FIXED", "0.20"),  # saved before the form knew Stripe's minimum
    ],
)
def test_a_recharge_below_stripes_minimum_charges_the_minimum(account, mode, saved_amount):
    """A USD minimum of 0.10 saved before the settings page knew Stripe's 0.50: Stripe refused a
    smaller recharge at every attempt, and the limits refused a fixed one at every claim, so
    the wallet was never recharged and nobody was told."""
    TopUpLimit.objects.filter(currency="USD").update(minimum=usd("0.10").nanos)
    recharge = enable(account, threshold="20", amount="20.20", mode=mode)
    AutoRecharge.objects.filter(pk=recharge.pk).update(amount=usd(saved_amount).nanos)

    debit(account, "80.05", "d1")  # 19.95 left: below the threshold

    attempt = RechargeAttempt.objects.get()
    assert attempt.state == RechargeAttempt.State.SUCCEEDED
    assert attempt.amount == usd("0.50").nanos
    assert balance(account) == usd("20.45").nanos


def test_an_amount_stripe_cannot_charge_fails_the_attempt_instead_of_sticking(account):
    recharge = enable(account)
    top_up = TopUp.objects.create(
        billing_account=account,
        currency="USD",
        amount=usd("30.0013").nanos,
        source=TopUp.Source.AUTO_RECHARGE,
    )
    attempt = RechargeAttempt.objects.create(
        auto_recharge=recharge, top_up=top_up, amount=top_up.amount
    )
    with _committing():
        assert auto_recharge_charge(attempt_id=attempt.pk) == RechargeAttempt.State.FAILED
    attempt.refresh_from_db()
    assert attempt.state == RechargeAttempt.State.FAILED
    assert "cannot be charged exactly" in attempt.failure_reason
    assert balance(account) == usd("100").nanos


def kwd(text: str):
    return money_parse(text, "KWD")


def offer_kwd(account) -> None:
    """KWD offered for Add credit, and a KWD wallet holding 100."""
    TopUpLimit.objects.create(
        currency="KWD", minimum=kwd("1").nanos, maximum=kwd("100").nanos, default=kwd("5").nanos
    )
    wallet_credit(account=account, money=kwd("100"), transaction_id="kwd", actor=Actor.system())


def kwd_debit(account, amount: str, tid: str):
    with _committing():
        wallet_debit(account=account, money=kwd(amount), transaction_id=tid, actor=Actor.system())


def test_top_up_to_target_rounds_up_to_what_stripe_charges_in_kwd(account):
    """Stripe takes three-decimal currencies only with a last digit of 0: KWD 30.013 is charged
    as 30.020, not refused."""
    offer_kwd(account)
    with _committing():
        auto_recharge_configure(
            account=account,
            currency="KWD",
            enabled=True,
            threshold=kwd("20"),
            mode="TARGET",
            amount=kwd("50"),
            monthly_cap=None,
            changed_by=account.user,
        )
    kwd_debit(account, "80.013", "d1")  # 19.987 left: 30.013 short of the target
    attempt = RechargeAttempt.objects.get()
    assert attempt.state == RechargeAttempt.State.SUCCEEDED, attempt.failure_reason
    assert attempt.amount == kwd("30.02").nanos
    assert Wallet.objects.get(currency="KWD").balance == kwd("50.007").nanos


def test_a_fixed_amount_stripe_cannot_charge_is_refused_in_the_settings(account):
    offer_kwd(account)
    message = "KWD amounts must be a multiple of 0.010: KWD5.123 cannot be charged exactly."
    with pytest.raises(BillingError, match=re.escape(message)):
        auto_recharge_configure(
            account=account,
            currency="KWD",
            enabled=True,
            threshold=kwd("20"),
            mode="FIXED",
            amount=kwd("5.123"),
            monthly_cap=None,
            changed_by=account.user,
        )
    assert not AutoRecharge.objects.exists()


def test_a_fixed_amount_saved_before_the_check_is_rounded_up_when_charged(account):
    offer_kwd(account)
    AutoRecharge.objects.create(
        billing_account=account,
        currency="KWD",
        enabled=True,
        threshold=kwd("20").nanos,
        mode="FIXED",
        amount=kwd("5.123").nanos,
    )
    Wallet.objects.filter(currency="KWD").update(recharge_below=kwd("20").nanos)
    kwd_debit(account, "85", "d1")  # 15 left
    attempt = RechargeAttempt.objects.get()
    assert attempt.state == RechargeAttempt.State.SUCCEEDED, attempt.failure_reason
    assert attempt.amount == kwd("5.13").nanos
    assert Wallet.objects.get(currency="KWD").balance == kwd("20.13").nanos


def test_a_currency_stripe_cannot_charge_is_refused_in_the_settings(account):
    TopUpLimit.objects.create(  # saved before the settings page refused LYD
        currency="LYD", minimum=10**9, maximum=100 * 10**9, default=5 * 10**9
    )
    with pytest.raises(BillingError, match="Stripe does not take payments in LYD"):
        auto_recharge_configure(
            account=account,
            currency="LYD",
            enabled=True,
            threshold=money_parse("20", "LYD"),
            mode="TARGET",
            amount=money_parse("50", "LYD"),
            monthly_cap=None,
            changed_by=account.user,
        )
    assert not AutoRecharge.objects.exists()


def test_enabling_below_threshold_recharges_at_once(account):
    debit(account, "90", "d1")
    enable(account)  # 10 < 20
    assert balance(account) == 60 * 10**9


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"amount": "4"}, "between $5.00 and $100.00"),  # tier 1 caps a purchase at 100
        ({"amount": "101"}, "between $5.00 and $100.00"),
        ({"mode": "TARGET", "threshold": "50", "amount": "40"}, "target balance must be above"),
        ({"mode": "TARGET", "threshold": "10", "amount": "200"}, "would exceed $100.00"),
        ({"cap": "1"}, "monthly cap below $5.00"),
        ({"threshold": "-1"}, "cannot be negative"),
    ],
)
def test_settings_outside_the_limits_are_refused(account, kwargs, message):
    with pytest.raises(BillingError, match=message.replace("$", r"\$").replace(".", r"\.")):
        enable(account, **kwargs)
    assert not AutoRecharge.objects.exists()


def test_enabling_needs_a_saved_card(developer):
    account = developer.billing_account
    with pytest.raises(BillingError, match="Save a card first"):
        enable(account)


def test_decline_backs_off_emails_and_switches_off_after_three(account):
    card_save(account=account, payment_method_id=DECLINED, brand="visa", last4="0002")
    account.refresh_from_db()
    enable(account)
    debit(account, "85", "d1")
    recharge = AutoRecharge.objects.get()
    assert recharge.consecutive_failures == 1 and recharge.enabled
    assert recharge.retry_after > timezone.now() + timedelta(minutes=59)
    assert RechargeAttempt.objects.get().state == RechargeAttempt.State.FAILED
    assert TopUp.objects.get().state == TopUp.State.FAILED
    # The decline, and (auto-recharge no longer standing in for them) the low-balance alert.
    [declined] = [m for m in mail.outbox if "balance is low" not in m.subject]
    assert account.user.email in declined.to
    assert "declined" in declined.body and "/account/balance/" in declined.body
    assert [m.subject for m in mail.outbox if "balance is low" in m.subject] == [
        "[Developer portal] Your USD balance is low: $15.00"
    ]
    # Backing off: another debit below the threshold does not charge within the hour.
    debit(account, "1", "d2")
    assert RechargeAttempt.objects.count() == 1

    for n in range(2):
        AutoRecharge.objects.update(retry_after=None)  # the hour has passed
        debit(account, "1", f"d{n + 3}")
    recharge.refresh_from_db()
    assert recharge.consecutive_failures == 3 and not recharge.enabled
    assert "Switched off after 3 failed charges" in recharge.disabled_reason
    assert Wallet.objects.get(currency="USD").recharge_below is None
    assert "Auto-recharge is now switched off." in mail.outbox[-1].body
    assert balance(account) == 12 * 10**9  # nothing was ever credited


def test_runaway_guard_stops_after_more_than_three_in_ten_minutes(account, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    enable(account, threshold="90", amount="50")  # each recharge lifts it above again
    for n in range(6):
        debit(account, "45", f"d{n}")
    recharge = AutoRecharge.objects.get()
    assert RechargeAttempt.objects.filter(state="SUCCEEDED").count() == 4
    assert not recharge.enabled and "runaway guard" in recharge.disabled_reason
    assert any("Auto-recharge stopped" in m.subject for m in mail.outbox)


def test_the_runaway_guard_trips_even_when_the_monthly_cap_holds_the_next_charge(account, settings):
    """Four recharges in ten minutes use up a cap of 200: the cap alone would hold the fifth,
    but the runaway must still be switched off and told, or recharging resumes next month."""
    settings.ADMINS = [("Ops", "ops@example.com")]
    enable(account, threshold="90", amount="50", cap="200")
    for n in range(6):
        debit(account, "45", f"d{n}")
    assert RechargeAttempt.objects.filter(state="SUCCEEDED").count() == 4
    recharge = AutoRecharge.objects.get()
    assert not recharge.enabled and "runaway guard" in recharge.disabled_reason
    assert any("Auto-recharge stopped" in m.subject for m in mail.outbox)


def test_monthly_cap_stops_recharging(account):
    enable(account, threshold="90", amount="10", cap="20")
    for n in range(4):
        debit(account, "15", f"d{n}")
    assert RechargeAttempt.objects.filter(state="SUCCEEDED").count() == 2


def test_postpaid_developers_are_never_charged(account):
    enable(account)
    billing_type_set(
        account=account,
        billing_type="POSTPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    account.refresh_from_db()
    debit(account, "95", "d1")
    assert not RechargeAttempt.objects.exists()


def test_sweep_finds_wallets_below_threshold_and_stale_attempts(account):
    enable(account)
    assert auto_recharge_due() == []
    Wallet.objects.update(balance=5 * 10**9)  # as if a debit's trigger was lost
    LedgerEntry.objects.create(
        wallet=Wallet.objects.get(),
        kind="ADJUSTMENT",
        amount=-95 * 10**9,
        balance_after=5 * 10**9,
        transaction_id="keep-ledger-honest",
        actor_type="SYSTEM",
    )
    assert auto_recharge_due() == [(account.pk, "USD")]

    assert auto_recharge_sweep.delay().get() == 1
    assert balance(account) == 55 * 10**9


def test_one_attempt_in_flight_at_most(account):
    recharge = enable(account)
    RechargeAttempt.objects.create(auto_recharge=recharge, amount=1)

    with pytest.raises(IntegrityError), transaction.atomic():
        RechargeAttempt.objects.create(auto_recharge=recharge, amount=1)


def test_an_attempt_with_a_reused_id_gets_a_new_idempotency_key(account):
    """Stripe keeps keys for 24 h per Stripe account; after a database restore (or beside another
    portal on the same account) ids come round again, and a key made from the id would replay
    another attempt's charge instead of charging."""
    recharge = enable(account)
    first = RechargeAttempt.objects.create(auto_recharge=recharge, amount=1)
    first_id, first_key = first.pk, first.idempotency_key
    first.delete()

    again = RechargeAttempt.objects.create(pk=first_id, auto_recharge=recharge, amount=1)

    assert again.idempotency_key != first_key
    assert again.idempotency_key.startswith("auto-recharge-")


def test_balance_page_saves_settings_and_shows_attempts(client, account):
    client.force_login(account.user)
    url = reverse("auto_recharge_settings", args=["USD"])
    data = {
        "recharge-USD-enabled": "on",
        "recharge-USD-threshold": "20",
        "recharge-USD-mode": "FIXED",
        "recharge-USD-amount": "50",
        "recharge-USD-monthly_cap": "",
    }
    response = client.post(url, data, follow=True)
    page = response.content.decode()
    assert "Auto-recharge for USD is on." in page
    assert "When the balance falls below $20.00, add $50.00." in page
    assert "Visa •••• 4242" in page
    bad = client.post(url, {**data, "recharge-USD-amount": "5000"})
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert "between $5.00 and $100.00" in bad.content.decode()
    debit(account, "85", "d1")
    page = client.get(reverse("my_balance")).content.decode()
    assert "Succeeded" in page and "Auto-recharge" in page


def test_last_recharges_say_their_times_are_utc_like_the_transactions(client, account):
    enable(account)
    debit(account, "85", "d1")
    client.force_login(account.user)
    page = client.get(reverse("my_balance")).content.decode()
    attempts = page[page.index('data-testid="recharge-attempts"') :]
    assert attempts.index("<th>When (UTC)</th>") < attempts.index("Succeeded")


def test_reloading_the_settings_address_after_a_refused_save_shows_the_balance_page(
    client, account
):
    """A refused save renders the balance page at the settings address; reloading it (a GET)
    was a blank 405 page."""
    client.force_login(account.user)
    url = reverse("auto_recharge_settings", args=["USD"])
    refused = client.post(url, {"recharge-USD-enabled": "on", "recharge-USD-threshold": "x"})
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    reloaded = client.get(url)
    assert reloaded.status_code == HTTPStatus.FOUND
    assert reloaded["Location"] == reverse("my_balance") + "#auto-recharge"
    assert 'id="auto-recharge"' in client.get(reloaded["Location"]).content.decode()
    assert not AutoRecharge.objects.filter(billing_account=account, enabled=True).exists()
    client.logout()
    assert client.get(url)["Location"].startswith(reverse("account_login"))


def test_offline_test_card_page_saves_a_card_through_the_webhook(client, developer, settings):
    client.force_login(developer)
    page = client.get(reverse("test_card")).content.decode()
    assert "TEST CARD" in page

    payload, signature = offline_setup_event(
        account=developer.billing_account, payment_method_id=VISA
    )
    with _committing():  # the card is looked up after the webhook's commit
        assert webhook_receive(payload=payload, signature=signature)[0] == 200
    developer.billing_account.refresh_from_db()
    assert (developer.billing_account.card_brand, developer.billing_account.card_last4) == (
        "visa",
        "4242",
    )
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    assert client.get(reverse("test_card")).status_code == HTTPStatus.NOT_FOUND


def test_other_developers_cannot_configure_my_auto_recharge(client, account, other_developer):
    client.force_login(other_developer)
    client.post(
        reverse("auto_recharge_settings", args=["USD"]),
        {
            "recharge-USD-enabled": "on",
            "recharge-USD-threshold": "20",
            "recharge-USD-mode": "FIXED",
            "recharge-USD-amount": "50",
        },
    )
    assert not AutoRecharge.objects.filter(billing_account=account).exists()


def test_an_attempt_in_flight_is_resumed_only_by_its_task_or_once_stale(account):

    enable(account)
    Wallet.objects.update(balance=5 * 10**9, recharge_below=20 * 10**9)
    first = auto_recharge_claim(account_id=account.pk, currency="USD", task_id="task-a")
    assert first is not None and first.task_id == "task-a"
    assert auto_recharge_claim(account_id=account.pk, currency="USD", task_id="task-b") is None
    assert auto_recharge_claim(account_id=account.pk, currency="USD", task_id="task-a") == first
    assert auto_recharge_due() == []  # the sweep leaves a young attempt alone
    RechargeAttempt.objects.update(created_at=timezone.now() - timedelta(minutes=6))
    assert auto_recharge_claim(account_id=account.pk, currency="USD", task_id="sweep") == first
    assert auto_recharge_due() == [(account.pk, "USD")]
    assert RechargeAttempt.objects.count() == 1


RECHARGE_FORM = {
    "recharge-USD-enabled": "on",
    "recharge-USD-threshold": "90",
    "recharge-USD-mode": "FIXED",
    "recharge-USD-amount": "5",
    "recharge-USD-monthly_cap": "",
}


def test_switching_on_again_while_the_runaway_guard_holds_says_when_it_can(client, account):
    enable(account, threshold="90", amount="50")  # each recharge lifts it above again
    for n in range(6):
        debit(account, "45", f"d{n}")
    client.force_login(account.user)
    finished = RechargeAttempt.objects.filter(state="SUCCEEDED").order_by("-finished_at")
    until = f"{finished[3].finished_at + timedelta(minutes=10):%H:%M}"
    page = client.get(reverse("my_balance")).content.decode()
    assert "Switched off by the runaway guard" in page
    assert f"It can be switched on again after {until} UTC" in page
    url = reverse("auto_recharge_settings", args=["USD"])

    with _committing():
        refused = client.post(url, RECHARGE_FORM)
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    page = refused.content.decode()
    assert f"It can be switched on again after {until} UTC. Nothing was changed." in page
    assert "Auto-recharge for USD is on." not in page
    assert not AutoRecharge.objects.get().enabled
    assert RechargeAttempt.objects.count() == 4

    RechargeAttempt.objects.update(finished_at=timezone.now() - timedelta(minutes=11))
    page = client.get(reverse("my_balance")).content.decode()
    assert (
        "Switching it on again charges your saved card (Visa •••• 4242) at once if your USD "
        "balance is below $90.00." in page
    )
    calmer = {**RECHARGE_FORM, "recharge-USD-threshold": "50", "recharge-USD-amount": "50"}
    asked = client.post(url, calmer).content.decode()  # below 50: saving charges at once
    assert "Saving charges <strong>Visa •••• 4242</strong>" in asked
    with _committing():
        confirmed = {**calmer, "confirm_charge": str(50 * NANOS_PER_UNIT)}
        page = client.post(url, confirmed, follow=True).content.decode()
    assert "Auto-recharge for USD is on." in page and "runaway guard" not in page
    assert AutoRecharge.objects.get().enabled
    assert RechargeAttempt.objects.filter(state="SUCCEEDED").count() == 5  # charged at once


def test_after_three_declines_the_page_says_what_switching_on_again_does(client, account):
    card_save(account=account, payment_method_id=DECLINED, brand="visa", last4="0002")
    account.refresh_from_db()
    enable(account)
    debit(account, "85", "d1")
    for n in range(2):
        AutoRecharge.objects.update(retry_after=None)
        debit(account, "1", f"d{n + 2}")
    client.force_login(account.user)
    page = client.get(reverse("my_balance")).content.decode()
    assert "Switched off after 3 failed charges in a row." in page
    assert (
        "Switching it on again starts the count of failed charges afresh and charges your saved "
        "card (Visa •••• 0002) at once if your USD balance is below $20.00. If that card was "
        "declined, replace it first." in page
    )


def test_a_recharge_that_leaves_the_balance_below_is_not_repeated_until_it_rises(client, account):
    """A fixed $10 when $41 is missing: one charge for this fall, not one a minute until the
    runaway guard switches auto-recharge off."""

    enable(account, threshold="50", amount="10")
    debit(account, "91", "big")  # 100 -> 9
    assert balance(account) == 19 * 10**9
    for n in range(3):
        with _committing():
            auto_recharge_sweep.delay()
        debit(account, "1", f"small{n}")
    assert RechargeAttempt.objects.filter(state="SUCCEEDED").count() == 1
    assert balance(account) == 16 * 10**9
    client.force_login(account.user)
    page = client.get(reverse("my_balance")).content.decode()
    assert "Your last recharge left the balance below $50.00, so auto-recharge waits" in page
    assert AutoRecharge.objects.get().enabled

    # Back at the threshold, the next fall is a new need.
    wallet_credit(account=account, money=usd("34"), transaction_id="manual", actor=Actor.system())
    debit(account, "1", "falls-again")
    assert RechargeAttempt.objects.filter(state="SUCCEEDED").count() == 2
    assert balance(account) == 59 * 10**9
    assert "auto-recharge waits" not in client.get(reverse("my_balance")).content.decode()


def test_saving_the_settings_again_ends_the_wait(account):
    enable(account, threshold="50", amount="10")
    debit(account, "91", "big")  # 9 -> recharged to 19, still below
    enable(account, threshold="50", amount="40")  # the developer raises the amount

    debit(account, "1", "next")

    assert RechargeAttempt.objects.filter(state="SUCCEEDED").count() == 2
    assert balance(account) == 58 * 10**9
