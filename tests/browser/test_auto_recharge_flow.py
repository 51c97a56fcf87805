"""Auto-recharge in Chromium, offline mode: save a test card, switch auto-recharge on, a debit
through the API crosses the threshold, and the balance page shows the recharge."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from accounts.services import api_token_create
from billing.billing_type.services import billing_type_set
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import BillingTypeChange, LedgerEntry, StripeEvent
from billing.money import money_parse
from tests.browser.signing_in import wait_for as wait_in_page
from tests.factories import PASSWORD, AdminFactory, DeveloperFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def wait_for(check, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_save_card_enable_and_a_debit_triggers_a_recharge(browser, live_server, settings):
    settings.PORTAL_BASE_URL = live_server.url
    developer = DeveloperFactory(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    account = developer.billing_account
    billing_type_set(
        account=account,
        billing_type="PREPAID",
        changed_by=None,
        source=BillingTypeChange.Source.ADMIN,
    )
    wallet_credit(
        account=account,
        money=money_parse("30", "USD"),
        transaction_id="opening",
        actor=Actor.system(),
    )
    _, token = api_token_create(user=AdminFactory(portal_admin=True), name="gateway")

    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", developer.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/account/balance/")
    assert page.inner_text("[data-testid=saved-card]") == "No card saved yet."

    page.click("text=Save a card")
    assert "TEST CARD" in page.inner_text("main")
    page.check("input[value=pm_offline_visa_4242]")
    page.click("text=Save card")
    assert "your card is being saved" in page.inner_text(".messages")

    # The card box asks again every 2 s until the webhook has saved the card: no reload.
    wait_in_page(
        page,
        "document.querySelector('[data-testid=saved-card]').innerText.includes('Visa •••• 4242')",
    )

    page.check("input[name=recharge-USD-enabled]")
    page.fill("input[name=recharge-USD-threshold]", "20")
    page.check("input[name=recharge-USD-mode][value=FIXED]")
    page.fill("input[name=recharge-USD-amount]", "50")
    page.click("#auto-recharge >> text=Save auto-recharge")
    assert "Auto-recharge for USD is on." in page.inner_text(".messages")
    assert "When the balance falls below $20.00, add $50.00." in page.inner_text(
        "[data-testid=recharge-state-USD]"
    )

    body = json.dumps(
        {"transactionAmount": {"currencyCode": "USD", "units": "15"}, "transactionId": "usage-1"}
    )
    request = urllib.request.Request(
        f"{live_server.url}/v1/organizations/demo-org/developers/{developer.email}/balance:debit",
        data=body.encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    page.reload()
    wallets = page.inner_text("[data-testid=wallets]")
    assert "$65.00" in wallets  # 30 - 15 = 15 < 20, so 50 was added
    assert "Succeeded" in page.inner_text("[data-testid=recharge-attempts]")
    assert "Auto-recharge" in page.inner_text("[data-testid=history]")
    page.screenshot(path="var/screenshots/auto-recharge-desktop.png", full_page=True)
    # The offline payment_intent.succeeded webhook lands too, and must not credit again.
    wait_for(
        lambda: StripeEvent.objects.filter(
            type="payment_intent.succeeded", status=StripeEvent.Status.PROCESSED
        ).exists()
    )
    assert LedgerEntry.objects.filter(kind="TOP_UP", memo="Auto-recharge").count() == 1
