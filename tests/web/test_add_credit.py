"""Add credit: the form, its limits, the Stripe customer and Checkout Session, cancel and status.

The real stripe library talks to the fake Stripe on 127.0.0.1; nothing under test is patched.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from billing.billing_accounts.selectors import organization_settings_get
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_adjust, wallet_credit
from billing.models import (
    BillingAccount,
    LedgerEntry,
    OrganizationSettings,
    TopUp,
    TopUpLimit,
    Wallet,
)
from billing.money import money_parse
from billing.payments.stripe_gateway import customer_create
from billing.top_ups.limits import PENDING_COUNTS_FOR
from tests.conftest import NANOS_PER_UNIT
from tests.factories import AdminFactory
from tests.fakes.silent_server import deadline
from tests.fakes.stripe_server import FakeStripe, StripeApiError
from tests.fixtures.stripe import add_credit, deliver, latest_top_up

pytestmark = pytest.mark.django_db


def page_text(response: Any) -> str:
    return html.unescape(response.content.decode())


def amount_errors(response: Any) -> list[str]:
    return response.context["form"].errors.get("amount", [])


def stripe_calls(fake: FakeStripe, path: str) -> list[dict[str, Any]]:
    return [r for r in fake.received_requests() if r["path"] == path]


def no_wait() -> None:
    OrganizationSettings.objects.filter(pk=organization_settings_get().pk).update(
        top_up_wait_seconds=0
    )


def earlier_top_up(account: BillingAccount, dollars: int, **fields: Any) -> TopUp:
    """A top-up made before this test, straight in the database (no Stripe involved)."""
    return TopUp.objects.create(
        billing_account=account,
        currency="USD",
        amount=dollars * NANOS_PER_UNIT,
        state=fields.pop("state", TopUp.State.SUCCEEDED),
        **fields,
    )


# --- the happy path -------------------------------------------------------------------------


def test_add_credit_opens_a_checkout_session_for_exactly_that_top_up(
    fake_stripe, prepaid_client, prepaid_developer
):
    response = add_credit(prepaid_client, "20")

    top_up = latest_top_up()
    assert (top_up.state, top_up.currency, top_up.amount) == ("PENDING", "USD", 20 * NANOS_PER_UNIT)
    assert top_up.billing_account.user == prepaid_developer
    [customer_call] = stripe_calls(fake_stripe, "/v1/customers")
    [session_call] = stripe_calls(fake_stripe, "/v1/checkout/sessions")
    customer = fake_stripe.get_object(
        BillingAccount.objects.get(user=prepaid_developer).stripe_customer_id
    )
    assert customer["email"] == prepaid_developer.email
    assert customer_call["idempotency_key"]
    params = session_call["params"]
    assert params["mode"] == "payment"
    assert params["customer"] == customer["id"]
    assert params["metadata"] == {"top_up_id": str(top_up.public_id)}
    assert params["payment_intent_data"]["metadata"] == {"top_up_id": str(top_up.public_id)}
    [item] = params["line_items"]
    assert (item["price_data"]["unit_amount"], item["price_data"]["currency"]) == ("2000", "usd")
    assert item["quantity"] == "1"
    assert session_call["idempotency_key"]
    assert params["success_url"].endswith(reverse("top_up_status", args=[top_up.public_id]))
    assert params["cancel_url"].endswith(reverse("top_up_cancel", args=[top_up.public_id]))
    session = fake_stripe.get_object(top_up.stripe_checkout_session_id)
    assert session["amount_total"] == 2000
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == session["url"] == top_up.checkout_url
    assert not LedgerEntry.objects.exists()  # nothing is credited before Stripe confirms


def test_a_developer_with_a_long_name_can_add_credit(
    fake_stripe, prepaid_client, prepaid_developer
):
    """The profile takes 150 characters each for first and last name; Stripe takes a Customer
    name of at most 256, and refused the whole payment page."""
    prepaid_developer.first_name, prepaid_developer.last_name = "F" * 150, "L" * 150
    prepaid_developer.save(update_fields=["first_name", "last_name"])

    response = add_credit(prepaid_client, "20")

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == latest_top_up().checkout_url
    account = BillingAccount.objects.get(user=prepaid_developer)
    customer = fake_stripe.get_object(account.stripe_customer_id)
    assert customer["name"] == ("F" * 150 + " " + "L" * 150)[:256]


def test_the_stripe_customer_is_created_once_and_reused(
    fake_stripe, prepaid_client, prepaid_developer
):
    no_wait()
    add_credit(prepaid_client, "20")
    customer_id = BillingAccount.objects.get(user=prepaid_developer).stripe_customer_id
    assert customer_id.startswith("cus_")

    add_credit(prepaid_client, "30")

    assert len(stripe_calls(fake_stripe, "/v1/customers")) == 1
    sessions = stripe_calls(fake_stripe, "/v1/checkout/sessions")
    assert [s["params"]["customer"] for s in sessions] == [customer_id, customer_id]
    assert [s["params"]["line_items"][0]["price_data"]["unit_amount"] for s in sessions] == [
        "2000",
        "3000",
    ]
    # Each attempt has its own idempotency key: the second is not a replay of the first.
    assert len({s["idempotency_key"] for s in sessions}) == 2
    assert not any(r["replayed"] for r in fake_stripe.received_requests())
    assert BillingAccount.objects.get(user=prepaid_developer).stripe_customer_id == customer_id


def test_a_second_portal_on_the_same_stripe_account_gets_its_own_customer(
    fake_stripe, prepaid_developer
):
    """Stripe keeps idempotency keys per Stripe account for 24 h. Another portal (staging beside
    production, or this one restored from a backup) has a billing account with the same id for
    another developer: it must get a customer of its own, not the first one's or an error."""

    account = BillingAccount.objects.get(user=prepaid_developer)
    first = customer_create(account=account)
    other_developer = User.objects.create_user("other-portal@example.com")
    same_id_elsewhere = BillingAccount(pk=account.pk, user=other_developer)

    second = customer_create(account=same_id_elsewhere)

    assert second != first
    assert fake_stripe.get_object(second)["email"] == "other-portal@example.com"
    assert fake_stripe.get_object(first)["email"] == prepaid_developer.email


def test_the_form_offers_the_organisation_limits(prepaid_client):
    response = prepaid_client.get(reverse("add_credit", args=["USD"]))

    text = page_text(response)
    assert response.status_code == HTTPStatus.OK
    assert "Amount to be added to your account balance" in text
    # Tier 1 caps a single top-up at $100, below the organisation's $500 maximum, and says so.
    assert "Between $5.00 and $100.00 per top-up" in text
    assert "$100.00 is the most your trust tier (New) allows at once" in text


def test_a_tier_that_caps_nothing_is_not_mentioned(prepaid_client, prepaid_developer):
    # Tier 2 caps a single top-up at $500, as the organisation does.
    BillingAccount.objects.filter(user=prepaid_developer).update(trust_tier=2)

    text = page_text(prepaid_client.get(reverse("add_credit", args=["USD"])))

    assert "Between $5.00 and $500.00 per top-up" in text
    assert "trust tier" not in text


def test_the_form_suggests_the_default_amount_in_plain_digits(prepaid_client):
    response = prepaid_client.get(reverse("add_credit", args=["USD"]))

    [field] = re.findall(r'<input[^>]*name="amount"[^>]*>', response.content.decode())
    assert 'value="10"' in field


def test_lower_case_currency_in_the_address_works(fake_stripe, prepaid_client):
    response = prepaid_client.post(reverse("add_credit", args=["usd"]), {"amount": "7.5"})

    assert response.status_code == HTTPStatus.FOUND
    assert (latest_top_up().currency, latest_top_up().amount) == ("USD", 7_500_000_000)


# --- limits: each refusal names the limit and creates or charges nothing ----------------------


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("4.99", "The minimum top-up is $5.00."),
        ("101", "Your trust tier (New) allows at most $100.00 in one top-up."),
        # The tier's cap is the lower one, so it is the one named, as in the form's hint.
        ("500.01", "Your trust tier (New) allows at most $100.00 in one top-up."),
        ("abc", "“abc” is not an amount: use digits, e.g. 20 or 20.50."),
        ("20.001", "USD amounts take at most 2 decimal places."),
        ("0", "Enter an amount greater than zero."),
        ("-20", "Enter an amount greater than zero."),
        ("", "Enter the amount to add."),
        ("1e400", "The amount is too large."),
    ],
)
def test_a_refused_amount_says_why_and_nothing_is_created(
    fake_stripe, prepaid_client, amount, message
):
    response = add_credit(prepaid_client, amount)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert amount_errors(response) == [message]
    assert message in page_text(response)
    assert not TopUp.objects.exists()
    assert fake_stripe.received_requests() == []


def test_a_higher_trust_tier_allows_more_in_one_top_up(fake_stripe, prepaid_client):
    BillingAccount.objects.update(trust_tier=2)

    response = add_credit(prepaid_client, "250")

    assert response.status_code == HTTPStatus.FOUND
    assert latest_top_up().amount == 250 * NANOS_PER_UNIT


def test_above_the_organisations_maximum_the_organisations_limit_is_named(
    fake_stripe, prepaid_client
):
    BillingAccount.objects.update(trust_tier=2)  # the tier allows 500, as the organisation does

    assert amount_errors(add_credit(prepaid_client, "500.01")) == [
        "The maximum for one top-up is $500.00."
    ]


def test_the_month_total_of_the_trust_tier_is_a_limit(
    fake_stripe, prepaid_client, prepaid_developer
):
    no_wait()
    account = prepaid_developer.billing_account
    for _ in range(4):
        earlier_top_up(account, 100)
    earlier_top_up(account, 50, state=TopUp.State.PENDING)  # still payable: it counts
    earlier_top_up(account, 100, state=TopUp.State.FAILED)  # failed: it does not

    refused = add_credit(prepaid_client, "50.01")

    assert amount_errors(refused) == [
        "Your trust tier (New) allows $500.00 of top-ups a month; $450.00 is used this month, "
        "so at most $50.00 more."
    ]
    assert TopUp.objects.count() == 6
    assert fake_stripe.received_requests() == []
    assert add_credit(prepaid_client, "50").status_code == HTTPStatus.FOUND


def test_last_months_top_ups_and_abandoned_ones_do_not_count(
    fake_stripe, prepaid_client, prepaid_developer
):
    account = prepaid_developer.billing_account
    last_month = timezone.now().replace(day=1) - timedelta(days=2)
    for _ in range(5):
        TopUp.objects.filter(pk=earlier_top_up(account, 100).pk).update(
            created_at=last_month, succeeded_at=last_month
        )
    abandoned = earlier_top_up(account, 100, state=TopUp.State.PENDING)
    # Its payment page expired (an hour) and the margin after it passed.
    expired = timezone.now() - PENDING_COUNTS_FOR - timedelta(minutes=1)
    TopUp.objects.filter(pk=abandoned.pk).update(created_at=expired)

    response = add_credit(prepaid_client, "100")

    assert response.status_code == HTTPStatus.FOUND


def test_a_delayed_payment_under_way_counts_against_the_month_until_it_settles(
    fake_stripe, prepaid_client, prepaid_developer
):
    """A bank debit paid on Stripe's page (checkout.session.completed, payment_status unpaid)
    is credited days later: meanwhile it is money on its way, not an abandoned page."""
    no_wait()
    account = prepaid_developer.billing_account
    for _ in range(4):
        earlier_top_up(account, 100)
    debit = earlier_top_up(account, 90, state=TopUp.State.PENDING)
    long_ago = timezone.now() - PENDING_COUNTS_FOR - timedelta(minutes=1)
    TopUp.objects.filter(pk=debit.pk).update(
        created_at=long_ago, stripe_payment_intent_id="pi_debit_under_way"
    )
    set_aside = earlier_top_up(account, 50, state=TopUp.State.PENDING, payment_set_aside=True)
    TopUp.objects.filter(pk=set_aside.pk).update(  # flagged for an admin: never credited
        created_at=long_ago, stripe_payment_intent_id="pi_wrong_amount"
    )

    refused = add_credit(prepaid_client, "10.01")

    assert amount_errors(refused) == [
        "Your trust tier (New) allows $500.00 of top-ups a month; $490.00 is used this month, "
        "so at most $10.00 more."
    ]
    assert add_credit(prepaid_client, "10").status_code == HTTPStatus.FOUND


def test_the_top_up_wait_refuses_a_second_top_up_within_300_seconds(fake_stripe, prepaid_client):
    assert add_credit(prepaid_client, "20").status_code == HTTPStatus.FOUND
    requests_before = len(fake_stripe.received_requests())

    refused = add_credit(prepaid_client, "20")

    [error] = amount_errors(refused)
    assert error.startswith("Please wait 5 min 0 s before adding credit in USD again")
    assert error.endswith(
        "the organisation allows one top-up every 5 minutes. Your last payment page is not "
        "paid yet: finish or cancel it (see above)."
    )
    # Above the form: the open payment, to finish or to cancel.
    first = latest_top_up()
    page = page_text(refused)
    assert "You started adding <strong>$20.00</strong>" in page
    assert f'href="{first.checkout_url}">Continue to that payment' in page
    assert f'href="{reverse("top_up_cancel", args=[first.public_id])}">Cancel it' in page
    assert TopUp.objects.count() == 1
    assert len(fake_stripe.received_requests()) == requests_before

    no_wait()
    assert add_credit(prepaid_client, "20").status_code == HTTPStatus.FOUND
    assert TopUp.objects.count() == 2


def test_no_open_payment_is_shown_once_it_is_paid_cancelled_or_expired(
    fake_stripe, prepaid_client, prepaid_developer
):
    page = lambda: page_text(prepaid_client.get(reverse("add_credit", args=["USD"])))  # noqa: E731
    assert "You started adding" not in page()
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    assert "You started adding <strong>$20.00</strong>" in page()

    TopUp.objects.filter(pk=top_up.pk).update(created_at=timezone.now() - timedelta(hours=2))
    assert "You started adding" not in page()  # its page expired
    TopUp.objects.filter(pk=top_up.pk).update(created_at=timezone.now())
    TopUp.objects.filter(pk=top_up.pk).update(stripe_payment_intent_id="pi_paid")
    assert "You started adding" not in page()  # paid, waiting for Stripe's confirmation
    TopUp.objects.filter(pk=top_up.pk).update(stripe_payment_intent_id=None)
    prepaid_client.post(reverse("top_up_cancel", args=[top_up.public_id]))
    assert "You started adding" not in page()


def test_the_wait_counts_from_the_last_credit_not_only_from_the_start(
    fake_stripe, prepaid_client, prepaid_developer
):
    # Started 10 minutes ago, paid 1 minute ago: 4 minutes are left.
    started = timezone.now() - timedelta(minutes=10)
    paid = earlier_top_up(prepaid_developer.billing_account, 20)
    TopUp.objects.filter(pk=paid.pk).update(
        created_at=started, succeeded_at=timezone.now() - timedelta(minutes=1)
    )

    refused = add_credit(prepaid_client, "20")

    [error] = amount_errors(refused)
    assert error.startswith("Please wait 4 min 0 s before adding credit in USD again")


def test_a_cancelled_top_up_does_not_start_the_wait(fake_stripe, prepaid_client):
    add_credit(prepaid_client, "20")
    prepaid_client.post(reverse("top_up_cancel", args=[latest_top_up().public_id]))

    assert add_credit(prepaid_client, "20").status_code == HTTPStatus.FOUND


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_currency_that_is_not_offered_is_404(fake_stripe, prepaid_client, method):
    response = getattr(prepaid_client, method)(
        reverse("add_credit", args=["EUR"]), {"amount": "20"} if method == "post" else {}
    )

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert not TopUp.objects.exists()
    assert fake_stripe.received_requests() == []


def test_add_credit_needs_a_login(client):
    response = client.get(reverse("add_credit", args=["USD"]))

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))


# --- cancel and the status page ---------------------------------------------------------------


def test_the_checkout_page_expires_after_an_hour(fake_stripe, prepaid_client):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()

    session = fake_stripe.get_object(top_up.stripe_checkout_session_id)
    assert session["expires_at"] == int(top_up.created_at.timestamp()) + 3600


def test_stripes_cancel_link_asks_before_cancelling(fake_stripe, prepaid_client):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    requests_before = len(fake_stripe.received_requests())

    response = prepaid_client.get(reverse("top_up_cancel", args=[top_up.public_id]))

    text = page_text(response)
    assert "Cancel adding $20.00?" in text
    assert "Cancelling closes the payment page, so it can no longer be paid." in text
    assert "If you have already paid there, nothing is cancelled" in text
    assert f'href="{top_up.checkout_url}"' in text  # back to the payment page
    assert 'method="post"' in text
    top_up.refresh_from_db()
    assert top_up.state == "PENDING"
    assert len(fake_stripe.received_requests()) == requests_before


def test_cancel_closes_stripes_page_and_says_nothing_was_charged(fake_stripe, prepaid_client):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()

    response = prepaid_client.post(reverse("top_up_cancel", args=[top_up.public_id]), follow=True)

    top_up.refresh_from_db()
    assert top_up.state == "CANCELED"
    assert response.redirect_chain == [(reverse("my_balance"), HTTPStatus.FOUND)]
    assert "Adding credit was cancelled. Nothing was charged." in page_text(response)
    assert not Wallet.objects.exists()
    status = prepaid_client.get(reverse("top_up_status", args=[top_up.public_id]))
    assert "Cancelled. Nothing was charged." in page_text(status)
    try_again = reverse("add_credit", args=["USD"]) + "?amount=20"  # the amount is kept
    assert f'href="{try_again}">Try again' in page_text(status)
    # The page can no longer be paid, so the freed limits cannot be used twice.
    assert fake_stripe.get_object(top_up.stripe_checkout_session_id)["status"] == "expired"
    with pytest.raises(StripeApiError, match="not open"):
        fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id)


def test_cancel_of_a_page_already_paid_keeps_the_top_up_for_its_webhook(
    fake_stripe, prepaid_client, prepaid_developer
):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    completed = fake_stripe.complete_checkout_session(top_up.stripe_checkout_session_id)

    response = prepaid_client.post(reverse("top_up_cancel", args=[top_up.public_id]), follow=True)

    top_up.refresh_from_db()
    assert top_up.state == "PENDING"
    assert "was already paid on the payment page, so it cannot be cancelled" in page_text(response)
    assert deliver(prepaid_client, completed).status_code == HTTPStatus.OK
    assert (
        Wallet.objects.get(billing_account__user=prepaid_developer).balance == 20 * NANOS_PER_UNIT
    )


def test_cancel_while_stripe_cannot_be_reached_cancels_nothing(
    fake_stripe, prepaid_client, settings
):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens on the discard port

    response = prepaid_client.post(reverse("top_up_cancel", args=[top_up.public_id]), follow=True)

    top_up.refresh_from_db()
    assert top_up.state == "PENDING"
    assert "Stripe could not be reached to close the payment page" in page_text(response)
    assert fake_stripe.get_object(top_up.stripe_checkout_session_id)["status"] == "open"


@pytest.mark.parametrize("method", ["get", "post"])
def test_cancel_after_the_payment_succeeded_changes_nothing(fake_stripe, prepaid_client, method):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    TopUp.objects.filter(pk=top_up.pk).update(state=TopUp.State.SUCCEEDED)

    response = getattr(prepaid_client, method)(
        reverse("top_up_cancel", args=[top_up.public_id]), follow=True
    )

    top_up.refresh_from_db()
    assert top_up.state == "SUCCEEDED"
    assert response.redirect_chain == [
        (reverse("top_up_status", args=[top_up.public_id]), HTTPStatus.FOUND)
    ]
    assert "Nothing was charged" not in page_text(response)
    assert fake_stripe.get_object(top_up.stripe_checkout_session_id)["status"] == "open"


@pytest.mark.parametrize("method", ["get", "post"])
def test_someone_elses_cancel_url_is_404(
    fake_stripe, prepaid_client, client, other_developer, method
):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    client.force_login(other_developer)

    response = getattr(client, method)(reverse("top_up_cancel", args=[top_up.public_id]))

    assert response.status_code == HTTPStatus.NOT_FOUND
    top_up.refresh_from_db()
    assert top_up.state == "PENDING"
    assert fake_stripe.get_object(top_up.stripe_checkout_session_id)["status"] == "open"


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_auto_recharge_top_up_has_no_cancel(fake_stripe, prepaid_client, method):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    TopUp.objects.filter(pk=top_up.pk).update(source=TopUp.Source.AUTO_RECHARGE)

    response = getattr(prepaid_client, method)(
        reverse("top_up_cancel", args=[top_up.public_id]), follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("top_up_status", args=[top_up.public_id])
    assert "Cancel this top-up" not in page_text(response)
    top_up.refresh_from_db()
    assert top_up.state == "PENDING"


def test_cancel_needs_a_login(fake_stripe, prepaid_client):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()

    response = Client().post(reverse("top_up_cancel", args=[top_up.public_id]))

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))
    top_up.refresh_from_db()
    assert top_up.state == "PENDING"


def test_the_owner_sees_the_pending_status_page(fake_stripe, prepaid_client):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()

    response = prepaid_client.get(reverse("top_up_status", args=[top_up.public_id]))

    text = page_text(response)
    assert response.status_code == HTTPStatus.OK
    assert "Pending: waiting for the payment of $20.00 to be confirmed." in " ".join(
        text.replace("<strong>", "").replace("</strong>", "").split()
    )
    # It polls itself until the top-up is final, saying which state it shows.
    assert f'hx-get="{reverse("top_up_status", args=[top_up.public_id])}?seen=PENDING"' in text


def test_the_status_page_as_an_htmx_fragment(fake_stripe, prepaid_client):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()

    response = prepaid_client.get(
        reverse("top_up_status", args=[top_up.public_id]), headers={"HX-Request": "true"}
    )

    text = page_text(response)
    assert text.lstrip().startswith('<div id="top-up-status" data-state="PENDING"')
    assert "<html" not in text
    # A poll that finds the state it already shows gets nothing to swap in.
    unchanged = prepaid_client.get(
        reverse("top_up_status", args=[top_up.public_id]),
        {"seen": "PENDING"},
        headers={"HX-Request": "true"},
    )
    assert (unchanged.status_code, unchanged.content) == (HTTPStatus.NO_CONTENT, b"")


@pytest.mark.parametrize("who", ["other_developer", "admin_without_permission", "portal_admin"])
def test_someone_elses_status_page_is_404(fake_stripe, prepaid_client, client, request, who):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    client.force_login(request.getfixturevalue(who))

    response = client.get(reverse("top_up_status", args=[top_up.public_id]))

    assert response.status_code == HTTPStatus.NOT_FOUND


def test_an_admin_allowed_to_see_the_add_credit_log_still_gets_404_on_the_developer_page(
    fake_stripe, prepaid_client, client
):
    add_credit(prepaid_client, "20")
    admin = AdminFactory()
    admin.user_permissions.add(Permission.objects.get(codename="view_add_credit_log"))
    client.force_login(admin)

    response = client.get(reverse("top_up_status", args=[latest_top_up().public_id]))

    assert response.status_code == HTTPStatus.NOT_FOUND


def test_anonymous_status_page_goes_to_login(fake_stripe, prepaid_client, client):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    prepaid_client.logout()

    response = prepaid_client.get(reverse("top_up_status", args=[top_up.public_id]))

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))


# --- the balance page's Add credit link -------------------------------------------------------


def add_credit_links(response: Any) -> list[str]:
    text = response.content.decode()
    return [
        currency
        for currency in ("USD", "EUR")
        if f'href="{reverse("add_credit", args=[currency])}"' in text
    ]


def test_the_balance_page_offers_add_credit_in_usd_before_any_wallet_exists(prepaid_client):
    response = prepaid_client.get(reverse("my_balance"))

    assert not Wallet.objects.exists()
    assert add_credit_links(response) == ["USD"]
    assert ">Add credit</a>" in response.content.decode()


def test_the_balance_page_offers_add_credit_for_a_negative_wallet(
    prepaid_client, prepaid_developer
):
    account = prepaid_developer.billing_account
    usd = money_parse("1", "USD")
    wallet_credit(account=account, money=usd, transaction_id="t1", actor=Actor.system())
    OrganizationSettings.objects.update(
        prepaid_grace_nanos=5 * NANOS_PER_UNIT
    )  # negative within grace
    wallet_adjust(
        account=account, change=-money_parse("3", "USD"), actor=Actor.system(), reason="x"
    )

    response = prepaid_client.get(reverse("my_balance"))

    assert Wallet.objects.get().balance == -2 * NANOS_PER_UNIT
    assert add_credit_links(response) == ["USD"]
    assert "-$2.00" in page_text(response)


def test_a_wallet_in_a_currency_not_offered_says_so(prepaid_client, prepaid_developer):
    account = prepaid_developer.billing_account
    eur = money_parse("5", "EUR")
    wallet_credit(account=account, money=eur, transaction_id="t1", actor=Actor.system())

    response = prepaid_client.get(reverse("my_balance"))

    assert add_credit_links(response) == ["USD"]
    assert "Add credit is not offered in EUR" in page_text(response)


# --- Stripe failing ---------------------------------------------------------------------------


FRIENDLY = "The payment page could not be opened. Nothing was charged; try again in a minute."


def test_stripe_unreachable_gives_a_friendly_error_and_a_failed_top_up(
    fake_stripe, prepaid_client, prepaid_developer, settings
):
    fake_stripe.stop()

    response = add_credit(prepaid_client, "20")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert amount_errors(response) == [FRIENDLY]
    top_up = latest_top_up()
    assert (top_up.state, top_up.failure_reason) == (
        "FAILED",
        "The payment page could not be opened.",
    )
    assert not Wallet.objects.exists()
    assert BillingAccount.objects.get(user=prepaid_developer).stripe_customer_id == ""

    # A failed attempt neither uses up the wait nor blocks the retry once Stripe is back.
    with FakeStripe() as back:
        settings.STRIPE_API_BASE = back.url
        retry = add_credit(prepaid_client, "20")
        assert retry.status_code == HTTPStatus.FOUND
        assert retry["Location"].startswith(back.url)
    assert TopUp.objects.filter(state="PENDING").count() == 1


def test_a_customer_stripe_no_longer_knows_is_replaced_and_the_page_opens(
    fake_stripe, prepaid_client, prepaid_developer
):
    # Deleted in Stripe's dashboard, or made with test keys before the switch to live ones:
    # every session for it is refused (400), so the developer could never add credit again.
    BillingAccount.objects.filter(user=prepaid_developer).update(stripe_customer_id="cus_gone")

    response = add_credit(prepaid_client, "20")

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(fake_stripe.url)
    [customer] = fake_stripe.objects("customer")
    assert BillingAccount.objects.get(user=prepaid_developer).stripe_customer_id == customer["id"]
    refused, opened = stripe_calls(fake_stripe, "/v1/checkout/sessions")
    assert (refused["status"], opened["status"]) == (HTTPStatus.BAD_REQUEST, HTTPStatus.OK)
    assert opened["params"]["customer"] == customer["id"]
    assert latest_top_up().state == "PENDING"


def test_the_card_saved_for_a_customer_stripe_no_longer_knows_is_forgotten_with_it(
    fake_stripe, prepaid_client, prepaid_developer
):
    """The card belonged to the lost customer: Stripe refuses it for the new one, so
    auto-recharge would fail, email the developer and switch itself off."""
    BillingAccount.objects.filter(user=prepaid_developer).update(
        stripe_customer_id="cus_gone",
        stripe_payment_method_id="pm_of_cus_gone",
        card_brand="visa",
        card_last4="4242",
    )

    assert add_credit(prepaid_client, "20").status_code == HTTPStatus.FOUND

    account = BillingAccount.objects.get(user=prepaid_developer)
    assert (
        account.stripe_customer_id.startswith("cus_") and account.stripe_customer_id != "cus_gone"
    )
    assert (account.stripe_payment_method_id, account.card_brand, account.card_last4) == (
        "",
        "",
        "",
    )
    page = prepaid_client.get(reverse("my_balance")).content.decode()
    assert "No card saved yet." in page


def test_saving_a_card_for_a_customer_stripe_no_longer_knows_replaces_it(
    fake_stripe, prepaid_client, prepaid_developer
):
    BillingAccount.objects.filter(user=prepaid_developer).update(stripe_customer_id="cus_gone")

    response = prepaid_client.post(reverse("card_setup"))

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(fake_stripe.url)
    [customer] = fake_stripe.objects("customer")
    assert BillingAccount.objects.get(user=prepaid_developer).stripe_customer_id == customer["id"]


def test_a_wrong_api_key_gives_a_friendly_error(fake_stripe, prepaid_client, settings):
    settings.STRIPE_SECRET_KEY = "sk_live_not_for_tests"

    response = add_credit(prepaid_client, "20")

    assert amount_errors(response) == [FRIENDLY]
    assert latest_top_up().state == "FAILED"
    assert [r["status"] for r in fake_stripe.received_requests()] == [HTTPStatus.UNAUTHORIZED]


# --- offline mode -----------------------------------------------------------------------------


def test_offline_add_credit_goes_to_the_test_payment_page(prepaid_client):
    response = add_credit(prepaid_client, "20")

    top_up = latest_top_up()
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].endswith(reverse("test_payment", args=[top_up.public_id]))
    assert top_up.stripe_checkout_session_id == f"cs_offline_{top_up.public_id.hex}"
    form = prepaid_client.get(reverse("add_credit", args=["USD"]))
    assert "test payment page" in page_text(form)


def test_a_postpaid_developer_cannot_add_credit(client, developer):
    """Postpaid usage is invoiced: there is no prepaid balance to top up."""

    client.force_login(developer)  # no billing type: the organisation default, Postpaid
    page = client.get(reverse("add_credit", args=["USD"]))
    assert page.status_code == HTTPStatus.OK
    assert "You are on <strong>Postpaid</strong> billing" in page.content.decode()
    assert 'name="amount"' not in page.content.decode()  # told before typing an amount
    response = client.post(reverse("add_credit", args=["USD"]), {"amount": "20"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "You are on <strong>Postpaid</strong> billing" in response.content.decode()
    assert not TopUp.objects.exists()


# --- amounts and currencies Stripe cannot charge ------------------------------------------------


def offer_currency(currency: str, minimum: str = "1", maximum: str = "500") -> None:
    """A limit straight in the database, as one saved before the settings page checked it."""
    TopUpLimit.objects.create(
        currency=currency,
        minimum=money_parse(minimum, currency).nanos,
        maximum=money_parse(maximum, currency).nanos,
        default=money_parse(minimum, currency).nanos,
    )


def test_a_three_decimal_amount_stripe_would_reject_is_refused_by_the_form(
    fake_stripe, prepaid_client
):
    """Stripe takes KWD, BHD, JOD, OMR and TND in thousandths whose last digit is 0."""
    offer_currency("KWD")

    response = add_credit(prepaid_client, "5.123", "KWD")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    message = "KWD amounts must be a multiple of 0.010: KWD5.123 cannot be charged exactly."
    assert amount_errors(response) == [message]
    assert message in page_text(response)
    assert not TopUp.objects.exists()
    assert fake_stripe.received_requests() == []


def test_a_three_decimal_amount_ending_in_0_goes_to_stripe_in_thousandths(
    fake_stripe, prepaid_client
):
    offer_currency("KWD")

    response = add_credit(prepaid_client, "5.12", "KWD")

    assert response.status_code == HTTPStatus.FOUND
    [session_call] = stripe_calls(fake_stripe, "/v1/checkout/sessions")
    [item] = session_call["params"]["line_items"]
    assert (item["price_data"]["unit_amount"], item["price_data"]["currency"]) == ("5120", "kwd")


def test_an_amount_below_stripes_minimum_charge_is_refused_by_the_form_not_by_stripe(
    fake_stripe, prepaid_client
):
    """A minimum saved before the settings page knew Stripe's: Stripe would refuse the payment
    page (amount_too_small), and the developer would be told to try again in a minute."""
    offer_currency("EUR", minimum="0.1")

    response = add_credit(prepaid_client, "0.2", "EUR")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    message = "Stripe charges at least €0.50 in EUR: €0.20 cannot be charged."
    assert amount_errors(response) == [message]
    assert not TopUp.objects.exists()
    assert fake_stripe.received_requests() == []
    assert add_credit(prepaid_client, "0.5", "EUR").status_code == HTTPStatus.FOUND


@pytest.mark.parametrize(
    "currency, amount", [("LYD", "5.123"), ("LYD", "5"), ("CLF", "1.2345"), ("UYW", "1")]
)
def test_a_currency_stripe_cannot_charge_is_refused_with_its_name_not_a_500(
    fake_stripe, prepaid_client, currency, amount
):
    """A limit saved before the settings page refused such currencies: Add credit says why."""
    offer_currency(currency, minimum="0.5")

    response = add_credit(prepaid_client, amount, currency)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    [message] = amount_errors(response)
    assert message.startswith(f"Stripe does not take payments in {currency}: its amounts have")
    assert message in page_text(response)
    assert not TopUp.objects.exists()
    assert fake_stripe.received_requests() == []


def test_the_settings_page_refuses_a_currency_stripe_cannot_charge(client, portal_admin):
    client.force_login(portal_admin)
    data = {
        "section": "top_ups",
        "top_up_wait_seconds": "300",
        "prepaid_grace": "0",
        "notification_email": "",
        "limits-TOTAL_FORMS": "1",
        "limits-INITIAL_FORMS": "0",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "50",
        "limits-0-currency": "LYD",
        "limits-0-minimum": "1",
        "limits-0-maximum": "100",
        "limits-0-default": "5.125",
    }

    response = client.post(reverse("monetization_settings"), data)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Stripe does not take payments in LYD" in page_text(response)
    assert not TopUpLimit.objects.filter(currency="LYD").exists()


def test_stripe_not_answering_gives_the_friendly_error_before_the_web_server_gives_up(
    fake_stripe, prepaid_client
):
    # Stripe takes the request and does not answer for a minute (a network or Stripe incident).
    fake_stripe.set_response_delay(60, path="/v1/checkout/sessions")

    with deadline(30):  # gunicorn's default worker timeout: a killed worker answers nothing
        response = add_credit(prepaid_client, "20")

    assert amount_errors(response) == [FRIENDLY]
    assert latest_top_up().state == "FAILED"  # it does not count against the limits
    retry = add_credit(prepaid_client, "20")  # Stripe answers again
    assert retry.status_code == HTTPStatus.FOUND
    assert retry["Location"].startswith(fake_stripe.url)


def test_cancel_while_stripe_does_not_answer_says_so_in_time_and_cancels_nothing(
    fake_stripe, prepaid_client
):
    add_credit(prepaid_client, "20")
    top_up = latest_top_up()
    session_id = top_up.stripe_checkout_session_id
    fake_stripe.set_response_delay(60, path=f"/v1/checkout/sessions/{session_id}/expire")

    with deadline(30):
        response = prepaid_client.post(
            reverse("top_up_cancel", args=[top_up.public_id]), follow=True
        )

    assert "Stripe could not be reached to close the payment page" in page_text(response)
    top_up.refresh_from_db()
    assert top_up.state == "PENDING"
    prepaid_client.post(reverse("top_up_cancel", args=[top_up.public_id]))  # Stripe answers again
    top_up.refresh_from_db()
    assert top_up.state == "CANCELED"


def test_a_top_up_whose_page_was_never_opened_stops_counting_after_a_minute(
    fake_stripe, prepaid_client, prepaid_developer
):
    # The request that started it died while asking Stripe for the page (its worker was killed):
    # no payment page, so nobody can pay it, and no Cancel link either.
    account = prepaid_developer.billing_account
    opening = earlier_top_up(account, 20, state=TopUp.State.PENDING)
    assert opening.checkout_url == ""

    # While its request may still be opening the page, it counts (the organisation's wait).
    assert amount_errors(add_credit(prepaid_client, "20"))[0].startswith("Please wait")

    TopUp.objects.filter(pk=opening.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    response = add_credit(prepaid_client, "20")

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(fake_stripe.url)
