"""Buy APIs, the purchase page and Purchased plans: what each role sees and may do, the quote
in exact numbers, the refusal that names the shortfall, one purchase per form however often it
is sent, cancelling, the unpaid banner, and the same few queries for 1 or 200 plans."""

from __future__ import annotations

import calendar
import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.catalog.rates import Band, ShareRate
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_credit
from billing.models import ApiProduct, LedgerEntry, OrganizationSettings, RatePlan, Subscription
from billing.money import Money
from billing.subscriptions.services import (
    recurring_fees_charge,
    subscription_expire,
    subscription_purchase,
)
from tests.conftest import NANOS_PER_UNIT, usd
from tests.factories import AdminFactory, ApiProductFactory, published_plan

pytestmark = pytest.mark.django_db


def text(response) -> str:
    """What a reader sees: the page without tags (words in inline ones run on), whitespace
    collapsed."""
    page = re.sub(r"</?(strong|span|a|em|b)\b[^>]*>", "", response.content.decode())
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def fund(account, amount: str) -> None:
    wallet_credit(
        account=account,
        money=usd(amount),
        transaction_id=f"credit-{amount}-{timezone.now().timestamp()}",
        actor=Actor.system(),
    )


def fees(account) -> list[int]:
    entries = LedgerEntry.objects.filter(wallet__billing_account=account, kind="FEE")
    return list(entries.order_by("id").values_list("amount", flat=True))


def balance(account) -> int:
    wallet = account.wallets.filter(currency="USD").first()
    return wallet.balance if wallet else 0


def purchase_url(plan: RatePlan) -> str:
    return reverse("plan_purchase", args=[plan.product.name])


def form_key(page) -> str:
    return re.search(r'name="idempotency_key" value="([^"]+)"', page.content.decode()).group(1)


def buy(client, plan: RatePlan, **fields: str):
    """Open the purchase page and confirm, as a developer does."""
    key = form_key(client.get(purchase_url(plan)))
    data = {"action": "buy", "idempotency_key": key, "quoted_start": "", **fields}
    return client.post(purchase_url(plan), data)


def first_fee_now(recurring_nanos: int) -> tuple[int, int, int]:
    """The first recurring fee of a purchase today: prorated by whole UTC days, rounded down."""
    today = datetime.now(UTC)
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    days = days_in_month - today.day + 1
    return recurring_nanos * days // days_in_month, days, days_in_month


@pytest.fixture
def plan_viewer(db):
    """An admin who may look at purchased plans but not cancel them."""
    admin = AdminFactory()
    admin.user_permissions.add(Permission.objects.get(codename="view_any_purchased_plan"))
    return admin


# ---- Buy APIs ----


def test_plan_cards_say_the_prices_in_words(client, developer):
    product = ApiProductFactory(
        display_name="Weather API",
        description="Forecasts for any place.",
        quota=1000,
        quota_time_unit=ApiProduct.QuotaTimeUnit.DAY,
    )
    published_plan(
        product,
        display_name="Standard",
        setup="10",
        recurring="15",
        fee_frequency_months=3,
        consumption_pricing_type="BANDED",
        bands=[
            Band(0, 100, 0),
            Band(100, 200, usd("0.015").nanos),
            Band(200, 0, usd("0.01").nanos),
        ],
        revenue_share_type="FIXED",
        share_rates=[ShareRate(0, 0, Decimal("12.5"))],
        start=datetime(2026, 1, 5, tzinfo=UTC),
        end=datetime(2040, 6, 30, tzinfo=UTC),
    )
    other = ApiProductFactory(
        display_name="Maps API", quota=60, quota_interval=5, quota_time_unit="minute"
    )
    published_plan(
        other,
        display_name="Metered",
        recurring="5",
        consumption_pricing_type="FIXED_PER_UNIT",
        bands=[Band(0, 0, usd("0.002").nanos)],
    )
    client.force_login(developer)
    page = text(client.get(reverse("plans")))
    assert (
        "Weather API Forecasts for any place. Standard plan · USD Setup fee $10.00 "
        "Recurring fee $15.00 every 3 months Per call Up to 100 calls: free "
        "Greater than 100 up to 200: $0.015 per call Greater than 200: $0.01 per call "
        "Calls are counted per calendar month (UTC). Revenue share 12.5% of revenue "
        "Quota 1,000 calls per day Active on 5 January 2026 Expires on 30 June 2040 "
        "Purchase Weather API"
    ) in page
    assert (
        "Setup fee None Recurring fee $5.00 every month Per call Every call: $0.002 per call "
        "Quota 60 calls per 5 minutes"
    ) in page
    assert "Expires on Never" in page


def test_only_plans_in_force_are_on_sale(client, developer):
    published_plan(ApiProductFactory(display_name="Ended API"), end=timezone.now())
    published_plan(
        ApiProductFactory(display_name="Coming API"), start=timezone.now() + timedelta(days=2)
    )
    draft = ApiProductFactory(display_name="Draft API")
    RatePlan.objects.create(product=draft, display_name="Draft", currency="USD")
    client.force_login(developer)
    page = text(client.get(reverse("plans")))
    assert "No API is on sale yet." in page
    assert client.get(reverse("plan_purchase", args=[draft.name])).status_code == 404
    assert client.get(reverse("plan_purchase", args=["no-such-api"])).status_code == 404


def test_a_bought_product_says_purchased_instead_of_purchase(client, prepaid_developer):
    bought = published_plan(ApiProductFactory(display_name="Bought API"))
    published_plan(ApiProductFactory(display_name="Other API"))
    subscription_purchase(
        account=prepaid_developer.billing_account, product=bought.product, actor=Actor.system()
    )
    client.force_login(prepaid_developer)
    response = client.get(reverse("plans"))
    page = text(response)
    assert "Bought API" in page and "✓ Purchased See Purchased plans" in page
    assert purchase_url(bought) not in response.content.decode()
    assert "Purchase Other API" in page


def test_admins_see_what_is_on_sale_but_do_not_buy(client, admin_without_permission):
    plan = published_plan(ApiProductFactory(display_name="Weather API"))
    client.force_login(admin_without_permission)
    response = client.get(reverse("plans"))
    assert response.status_code == HTTPStatus.OK and "Weather API" in text(response)
    assert purchase_url(plan) not in response.content.decode()
    assert "administrators see what is on sale" in text(response)
    assert client.get(purchase_url(plan)).status_code == HTTPStatus.FORBIDDEN
    assert not Subscription.objects.exists()


@pytest.mark.parametrize(
    "name", ["plans", "my_plans", "plan_purchase", "my_plan_cancel", "people_plans"]
)
def test_anonymous_visitors_are_sent_to_sign_in(client, developer, name):
    plan = published_plan()
    subscription = subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    ).subscription
    args = {
        "plans": [],
        "my_plans": [],
        "plan_purchase": [plan.product.name],
        "my_plan_cancel": [subscription.public_id],
        "people_plans": [developer.pk],
    }[name]
    url = reverse(name, args=args)
    response = client.get(url)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))
    if name == "my_plan_cancel":
        assert client.post(url).status_code == HTTPStatus.FOUND
        subscription.refresh_from_db()
        assert subscription.end_time is None


# ---- The purchase page ----


def test_the_quote_is_setup_plus_prorated_first_fee_and_the_balance_after(
    client, prepaid_developer
):
    plan = published_plan(setup="10", recurring="31")
    fund(prepaid_developer.billing_account, "100")
    client.force_login(prepaid_developer)
    page = text(client.get(purchase_url(plan)))
    first, days, days_in_month = first_fee_now(31 * NANOS_PER_UNIT)
    total = usd("10").nanos + first
    month = datetime.now(UTC).strftime("%B %Y")
    assert (
        f"Setup fee $10.00 First recurring fee {Money(first, 'USD')} {days} of {days_in_month} "
        f"days of {month} Total {Money(total, 'USD')} charged now "
        f"Your USD balance $100.00 Balance after {Money(100 * NANOS_PER_UNIT - total, 'USD')}"
    ) in page
    assert "Confirm purchase" in page and "insufficient funds" not in page


def test_buying_charges_the_quote_and_says_what_was_charged(client, prepaid_developer):
    plan = published_plan(ApiProductFactory(display_name="Weather API"), setup="10", recurring="31")
    account = prepaid_developer.billing_account
    fund(account, "100")
    client.force_login(prepaid_developer)
    response = buy(client, plan)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("my_plans")
    first, days, days_in_month = first_fee_now(31 * NANOS_PER_UNIT)
    assert fees(account) == [-usd("10").nanos, -first]
    page = text(client.get(response["Location"]))
    assert (
        f"You bought Weather API (Standard plan). Charged {Money(usd('10').nanos + first, 'USD')} "
        f"to your balance: setup fee $10.00 and first recurring fee {Money(first, 'USD')} "
        f"({days} of {days_in_month} days)."
    ) in page
    assert "Weather API Standard ✓ Active" in page


def test_the_terms_must_be_accepted_when_the_organisation_has_them(client, prepaid_developer):
    OrganizationSettings.objects.update(purchase_terms="No refunds.\nBe nice to the API.")
    plan = published_plan()
    client.force_login(prepaid_developer)
    page = client.get(purchase_url(plan)).content.decode()
    assert "<p>No refunds.<br>Be nice to the API.</p>" in page
    assert 'name="accept_terms"' in page

    refused = buy(client, plan)
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert "Accept the purchase terms to buy this plan." in text(refused)
    assert not Subscription.objects.exists()

    assert buy(client, plan, accept_terms="on").status_code == HTTPStatus.FOUND
    assert Subscription.objects.count() == 1


def test_without_terms_there_is_no_checkbox(client, prepaid_developer):
    OrganizationSettings.objects.update(purchase_terms="")
    plan = published_plan()
    client.force_login(prepaid_developer)
    assert 'name="accept_terms"' not in client.get(purchase_url(plan)).content.decode()
    assert buy(client, plan).status_code == HTTPStatus.FOUND


def test_not_enough_money_names_the_shortfall_and_charges_nothing(client, prepaid_developer):
    plan = published_plan(ApiProductFactory(display_name="Weather API"), setup="10")
    account = prepaid_developer.billing_account
    fund(account, "5")
    client.force_login(prepaid_developer)
    message = (
        "You have insufficient funds to purchase this plan. Add at least $5.00 to your balance."
    )
    add_credit = reverse("add_credit", args=["USD"]) + "?amount=5"

    before = client.get(purchase_url(plan))  # said before confirming
    assert message in text(before) and f'href="{add_credit}"' in before.content.decode()
    assert "Confirm purchase" not in text(before)

    refused = buy(client, plan)  # and if confirmed anyway (another tab, a stale page)
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert f"{message} Nothing was charged." in text(refused)
    assert f'href="{add_credit}"' in refused.content.decode()
    assert not Subscription.objects.exists() and fees(account) == []
    assert balance(account) == 5 * NANOS_PER_UNIT
    # The link fills in the shortfall on Add credit.
    form = client.get(add_credit).content.decode()
    assert re.search(r'name="amount" value="5"', form)


def test_a_shortfall_below_the_smallest_top_up_links_the_smallest_top_up(client, prepaid_developer):
    plan = published_plan(setup="10")
    fund(prepaid_developer.billing_account, "8")
    client.force_login(prepaid_developer)
    response = client.get(purchase_url(plan))
    assert "Add at least $2.00 to your balance." in text(response)
    assert reverse("add_credit", args=["USD"]) + "?amount=5" in response.content.decode()
    assert "The smallest top-up is $5.00." in text(response)


def test_postpaid_fees_accrue(client, developer):
    plan = published_plan(ApiProductFactory(display_name="Weather API"), setup="10")
    client.force_login(developer)
    page = text(client.get(purchase_url(plan)))
    assert "You are on Postpaid billing" in page and "Balance after -$10.00" in page
    response = buy(client, plan)
    assert response.status_code == HTTPStatus.FOUND
    assert balance(developer.billing_account) == -10 * NANOS_PER_UNIT
    assert (
        "You bought Weather API (Standard plan). $10.00 is billed on your next invoice: "
        "setup fee $10.00."
    ) in text(client.get(response["Location"]))


def test_the_same_form_sent_twice_buys_once(client, prepaid_developer):
    plan = published_plan(ApiProductFactory(display_name="Weather API"), setup="3")
    account = prepaid_developer.billing_account
    fund(account, "10")
    client.force_login(prepaid_developer)
    key = form_key(client.get(purchase_url(plan)))
    data = {"action": "buy", "idempotency_key": key, "quoted_start": ""}
    first = client.post(purchase_url(plan), data)
    again = client.post(purchase_url(plan), data)  # a double click, a retry
    assert first.status_code == again.status_code == HTTPStatus.FOUND
    assert Subscription.objects.count() == 1 and fees(account) == [-usd("3").nanos]
    assert (
        "You had already bought Weather API (Standard plan) with this form: nothing more was "
        "charged."
    ) in text(client.get(reverse("my_plans")))


def test_a_second_tab_is_told_it_is_bought_already(client, prepaid_developer):
    plan = published_plan(ApiProductFactory(display_name="Weather API"), setup="3")
    account = prepaid_developer.billing_account
    fund(account, "10")
    client.force_login(prepaid_developer)
    first_tab = form_key(client.get(purchase_url(plan)))
    second_tab = form_key(client.get(purchase_url(plan)))
    assert first_tab != second_tab
    for key in (first_tab, second_tab):
        last = client.post(
            purchase_url(plan), {"action": "buy", "idempotency_key": key, "quoted_start": ""}
        )
    assert last.status_code == HTTPStatus.CONFLICT
    assert "You have already purchased Weather API" in text(last)
    assert f'href="{reverse("my_plans")}"' in last.content.decode()
    assert "Confirm purchase" not in text(last)
    assert Subscription.objects.count() == 1 and fees(account) == [-usd("3").nanos]
    # Coming back to the page later says the same, without a form.
    again = client.get(purchase_url(plan))
    assert "You have already purchased Weather API. See Purchased plans" in text(again)
    assert 'name="idempotency_key"' not in again.content.decode()


def test_a_later_start_is_priced_before_it_is_bought(client, prepaid_developer):
    plan = published_plan(ApiProductFactory(display_name="Weather API"), setup="10")
    account = prepaid_developer.billing_account
    fund(account, "20")
    client.force_login(prepaid_developer)
    day = (timezone.now() + timedelta(days=3)).date()
    key = form_key(client.get(purchase_url(plan)))
    # Confirming with a new date shows its price first and buys nothing.
    data = {"action": "buy", "idempotency_key": key, "quoted_start": "", "start_date": day}
    repriced = client.post(purchase_url(plan), data)
    assert repriced.status_code == HTTPStatus.OK
    assert "The start date changed" in text(repriced)
    assert f"Price for a start on {day:%-d %B %Y}" in text(repriced)
    assert f'name="quoted_start" value="{day.isoformat()}"' in repriced.content.decode()
    assert not Subscription.objects.exists()

    bought = client.post(purchase_url(plan), {**data, "quoted_start": day.isoformat()})
    assert bought.status_code == HTTPStatus.FOUND
    subscription = Subscription.objects.get()
    assert subscription.start_time == datetime(day.year, day.month, day.day, tzinfo=UTC)
    assert fees(account) == []  # charged when it starts
    page = text(client.get(reverse("my_plans")))
    assert (
        f"You bought Weather API (Standard plan), starting on {day:%-d %B %Y}. $10.00 "
        f"(setup fee $10.00) will be charged on {day:%-d %B %Y}, when it starts."
    ) in page
    assert "Weather API Standard ◷ Future" in page


def test_update_price_shows_the_price_for_the_date(client, prepaid_developer):
    plan = published_plan(recurring="30")
    client.force_login(prepaid_developer)
    today = timezone.now().date()
    first_of_next = (today.replace(day=28) + timedelta(days=4)).replace(day=1)
    response = client.post(
        purchase_url(plan),
        {"action": "quote", "idempotency_key": "k", "start_date": first_of_next},
    )
    days = calendar.monthrange(first_of_next.year, first_of_next.month)[1]
    assert f"First recurring fee $30.00 {days} of {days} days" in text(response)
    assert not Subscription.objects.exists()


def test_a_past_start_date_is_refused(client, prepaid_developer):
    plan = published_plan()
    client.force_login(prepaid_developer)
    yesterday = timezone.now().date() - timedelta(days=1)
    response = buy(client, plan, start_date=yesterday.isoformat())
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Start date: This date is in the past" in text(response)
    assert not Subscription.objects.exists()


def test_a_start_when_no_plan_is_on_sale_is_refused(client, prepaid_developer):
    plan = published_plan(
        ApiProductFactory(display_name="Weather API"), end=timezone.now() + timedelta(days=2)
    )
    client.force_login(prepaid_developer)
    later = (timezone.now() + timedelta(days=5)).date().isoformat()
    key = form_key(client.get(purchase_url(plan)))
    data = {"idempotency_key": key, "start_date": later}
    priced = client.post(purchase_url(plan), {**data, "action": "quote"})
    assert priced.status_code == HTTPStatus.BAD_REQUEST
    assert "Start date: Weather API has no plan on sale on that date." in text(priced)
    assert "Price if you buy now" in text(priced)  # the price shown is for now, as the form
    assert 'name="quoted_start" value=""' in priced.content.decode()
    # Confirmed with that date anyway (a page made before the plan's end was set):
    bought = client.post(purchase_url(plan), {**data, "action": "buy", "quoted_start": later})
    assert bought.status_code == HTTPStatus.BAD_REQUEST
    assert "Start date: Weather API has no published rate plan to buy then." in text(bought)
    assert not Subscription.objects.exists()


# ---- Purchased plans and cancelling ----


def test_purchased_plans_in_two_sections_with_status_dates_and_fees(client, prepaid_developer):
    account = prepaid_developer.billing_account
    fund(account, "100")
    active = published_plan(ApiProductFactory(display_name="Active API"), setup="2.5")
    future = published_plan(ApiProductFactory(display_name="Future API"), setup="1")
    ended = published_plan(ApiProductFactory(display_name="Ended API"), setup="4")
    subscription_purchase(account=account, product=active.product, actor=Actor.system())
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=2)
    subscription_purchase(
        account=account, product=future.product, actor=Actor.system(), start_time=start
    )
    gone = subscription_purchase(account=account, product=ended.product, actor=Actor.system())
    subscription_expire(subscription=gone.subscription, actor=Actor.system())
    client.force_login(prepaid_developer)
    response = client.get(reverse("my_plans"))
    page = text(response)
    open_part, ended_part = page.split("Cancelled and Expired")
    assert "Active API Standard ✓ Active" in open_part and "$2.50" in open_part
    assert f"Future API Standard ◷ Future {start:%-d %b %Y} 00:00 — $0.00" in open_part
    assert "Ended API" not in open_part
    assert "Ended API Standard ■ Ended" in ended_part and "$4.00" in ended_part
    assert "Cancel" not in ended_part
    assert response.content.decode().count("/cancel/") == 2


def test_cancel_asks_first_then_ends_now_and_buying_again_works(client, prepaid_developer):
    plan = published_plan(ApiProductFactory(display_name="Weather API"), setup="1")
    account = prepaid_developer.billing_account
    fund(account, "10")
    client.force_login(prepaid_developer)
    buy(client, plan)
    subscription = Subscription.objects.get()
    url = reverse("my_plan_cancel", args=[subscription.public_id])

    ask = client.get(url)
    assert "Cancel Weather API (Standard plan)?" in text(ask)
    assert (
        "The plan ends now: calls to Weather API are refused from now on, and no further fee "
        "is charged. The recurring fee already paid is not refunded."
    ) in text(ask)
    subscription.refresh_from_db()
    assert subscription.end_time is None  # asking changed nothing

    done = client.post(url)
    assert done["Location"] == reverse("my_plans")
    subscription.refresh_from_db()
    assert subscription.end_time is not None
    assert "Weather API (Standard plan) is cancelled: it ended now." in text(
        client.get(reverse("my_plans"))
    )
    # Once ended, the address says so instead of asking again.
    assert client.get(url)["Location"] == reverse("my_plans")

    assert "Purchase Weather API" in text(client.get(reverse("plans")))
    assert buy(client, plan).status_code == HTTPStatus.FOUND
    assert Subscription.objects.filter(end_time__isnull=True).count() == 1
    assert Subscription.objects.count() == 2
    assert fees(account) == [-usd("1").nanos, -usd("1").nanos]


def test_another_developer_cannot_see_or_cancel_a_plan(client, developer, other_developer):
    plan = published_plan(ApiProductFactory(display_name="Secret API"))
    subscription = subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    ).subscription
    client.force_login(other_developer)
    url = reverse("my_plan_cancel", args=[subscription.public_id])
    assert client.get(url).status_code == HTTPStatus.NOT_FOUND
    assert client.post(url).status_code == HTTPStatus.NOT_FOUND
    subscription.refresh_from_db()
    assert subscription.end_time is None
    assert "Secret API Standard" not in text(client.get(reverse("my_plans")))
    people = reverse("people_plans", args=[developer.pk])
    assert client.get(people).status_code == HTTPStatus.NOT_FOUND
    cancel = reverse("people_plan_cancel", args=[developer.pk, subscription.public_id])
    assert client.post(cancel).status_code == HTTPStatus.NOT_FOUND


# ---- Admins: /people/<id>/account/plans/ ----


def test_admin_without_the_permission_is_refused(client, developer, admin_without_permission):
    subscription = subscription_purchase(
        account=developer.billing_account, product=published_plan().product, actor=Actor.system()
    ).subscription
    client.force_login(admin_without_permission)
    page = client.get(reverse("people_plans", args=[developer.pk]))
    assert page.status_code == HTTPStatus.FORBIDDEN
    assert "View any purchased plan" in text(page)
    cancel = reverse("people_plan_cancel", args=[developer.pk, subscription.public_id])
    assert client.post(cancel).status_code == HTTPStatus.FORBIDDEN
    account = client.get(reverse("people_account", args=[developer.pk]))
    assert reverse("people_plans", args=[developer.pk]) not in account.content.decode()


def test_an_admin_who_may_view_sees_the_plans_but_cannot_cancel(client, developer, plan_viewer):
    plan = published_plan(ApiProductFactory(display_name="Weather API"))
    subscription = subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    ).subscription
    client.force_login(plan_viewer)
    account = client.get(reverse("people_account", args=[developer.pk])).content.decode()
    assert f'href="{reverse("people_plans", args=[developer.pk])}"' in account  # the tab
    response = client.get(reverse("people_plans", args=[developer.pk]))
    assert response.status_code == HTTPStatus.OK
    assert "Weather API Standard ✓ Active" in text(response)
    assert "/cancel/" not in response.content.decode()
    cancel = reverse("people_plan_cancel", args=[developer.pk, subscription.public_id])
    refused = client.post(cancel)
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert "Update any purchased plan" in text(refused)
    subscription.refresh_from_db()
    assert subscription.end_time is None


def test_a_portal_admin_cancels_a_developers_plan(client, developer, other_developer, portal_admin):
    plan = published_plan(ApiProductFactory(display_name="Weather API"))
    subscription = subscription_purchase(
        account=developer.billing_account, product=plan.product, actor=Actor.system()
    ).subscription
    others = subscription_purchase(
        account=other_developer.billing_account, product=plan.product, actor=Actor.system()
    ).subscription
    client.force_login(portal_admin)
    plans = reverse("people_plans", args=[developer.pk])
    cancel = reverse("people_plan_cancel", args=[developer.pk, subscription.public_id])
    assert f'href="{cancel}"' in client.get(plans).content.decode()
    # Another developer's plan is not under this developer's address.
    wrong = reverse("people_plan_cancel", args=[developer.pk, others.public_id])
    assert client.post(wrong).status_code == HTTPStatus.NOT_FOUND
    assert "The recurring fee already paid is not refunded." in text(client.get(cancel))
    done = client.post(cancel)
    assert done["Location"] == plans
    subscription.refresh_from_db()
    others.refresh_from_db()
    assert subscription.end_time is not None and others.end_time is None
    page = text(client.get(plans))
    assert "Weather API (Standard plan) is cancelled: it ended now." in page
    assert "Weather API Standard ■ Ended" in page.split("Cancelled and Expired")[1]
    # Staff are not developers: their own id is no developer's page.
    assert client.get(reverse("people_plans", args=[portal_admin.pk])).status_code == 404


# ---- Home, My account, the unpaid banner ----


def test_home_and_my_account_list_the_open_plans(client, prepaid_developer):
    account = prepaid_developer.billing_account
    open_plan = published_plan(ApiProductFactory(display_name="Open API"))
    ended_plan = published_plan(ApiProductFactory(display_name="Gone API"))
    subscription_purchase(account=account, product=open_plan.product, actor=Actor.system())
    gone = subscription_purchase(account=account, product=ended_plan.product, actor=Actor.system())
    subscription_expire(subscription=gone.subscription, actor=Actor.system())
    client.force_login(prepaid_developer)
    for name in ("home", "my_account"):
        response = client.get(reverse(name))
        page = text(response)
        assert "Purchased plans Open API · Standard ✓ Active All purchased plans" in page, name
        assert "Gone API" not in page, name
        assert f'href="{reverse("my_plans")}"' in response.content.decode()


def test_home_without_plans_points_to_buy_apis(client, developer):
    client.force_login(developer)
    response = client.get(reverse("home"))
    assert "Purchased plans None yet. Buy APIs to start calling them." in text(response)
    assert f'href="{reverse("plans")}"' in response.content.decode()


def test_navigation_links_for_developers_only(client, developer, admin_without_permission):
    client.force_login(developer)
    nav = client.get(reverse("my_account")).content.decode().split("</nav>")[0]
    assert f'href="{reverse("plans")}">Buy APIs' in nav
    assert f'href="{reverse("my_plans")}">Purchased plans' in nav
    client.force_login(admin_without_permission)
    nav = client.get(reverse("people_list")).content.decode().split("</nav>")[0]
    assert "Buy APIs" not in nav


def _unpaid(account, display_name: str = "Weather API") -> Subscription:
    """A plan bought two months ago whose fees the prepaid wallet could not pay."""
    plan = published_plan(
        ApiProductFactory(display_name=display_name),
        recurring="31",
        start=datetime(2026, 1, 1, tzinfo=UTC),
    )
    started = timezone.now() - timedelta(days=40)
    subscription = Subscription.objects.create(
        billing_account=account,
        product=plan.product,
        rate_plan=plan,
        start_time=started,
        next_charge_at=started,
    )
    recurring_fees_charge()
    subscription.refresh_from_db()
    assert subscription.unpaid_since is not None
    return subscription


def test_an_unpaid_fee_shows_a_banner_on_every_page(client, prepaid_developer, other_developer):
    subscription = _unpaid(prepaid_developer.billing_account)
    month = datetime.strptime(subscription.unpaid_period, "%Y-%m").strftime("%B %Y")
    client.force_login(prepaid_developer)
    banner = "⚠ Your Weather API plan fee is unpaid: calls are refused until it is paid. Add credit"
    for name in ("home", "my_account", "my_balance", "plans", "my_plans"):
        response = client.get(reverse(name))
        assert banner in text(response), name
    plans = text(client.get(reverse("my_plans")))
    assert "Weather API Standard ⚠ Unpaid" in plans
    assert f"The fee for {month} is unpaid: calls are refused until it is paid. Add credit" in plans
    client.force_login(other_developer)
    assert "plan fee is unpaid" not in text(client.get(reverse("home")))


def subscription_queries(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    return [q["sql"] for q in ctx.captured_queries if "billing_subscription" in q["sql"]]


def test_the_banner_costs_one_query_and_none_for_anonymous_visitors(client, prepaid_developer):
    assert subscription_queries(client, reverse("account_login")) == []
    assert subscription_queries(client, reverse("home")) == []
    client.force_login(prepaid_developer)
    # The balance page reads no plans itself: what it reads is the banner's one query.
    assert len(subscription_queries(client, reverse("my_balance"))) == 1


# ---- The same few queries however many ----


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == HTTPStatus.OK
    return len(ctx.captured_queries)


def test_buy_apis_makes_the_same_queries_for_1_or_200_products(client, developer):
    account = developer.billing_account  # postpaid: the fees accrue
    first = published_plan()
    subscription_purchase(account=account, product=first.product, actor=Actor.system())
    client.force_login(developer)
    one = _queries(client, reverse("plans"))
    for _ in range(199):
        plan = published_plan(setup="1", recurring="2")
        if plan.pk % 2:
            subscription_purchase(account=account, product=plan.product, actor=Actor.system())
    response = client.get(reverse("plans"))
    assert response.content.decode().count('class="card plan"') == 200
    assert _queries(client, reverse("plans")) == one


def test_purchased_plans_make_the_same_queries_for_1_or_200(client, developer, plan_viewer):
    account = developer.billing_account
    client.force_login(developer)
    subscription_purchase(
        account=account, product=published_plan(setup="1").product, actor=Actor.system()
    )
    mine_one = _queries(client, reverse("my_plans"))
    home_one = _queries(client, reverse("home"))
    client.force_login(plan_viewer)
    people_one = _queries(client, reverse("people_plans", args=[developer.pk]))
    for n in range(199):
        bought = subscription_purchase(
            account=account, product=published_plan(setup="1").product, actor=Actor.system()
        )
        if n % 3 == 0:
            subscription_expire(subscription=bought.subscription, actor=Actor.system())
    assert Subscription.objects.filter(billing_account=account).count() == 200
    assert _queries(client, reverse("people_plans", args=[developer.pk])) == people_one
    client.force_login(developer)
    assert _queries(client, reverse("my_plans")) == mine_one
    assert _queries(client, reverse("home")) == home_one
    page = client.get(reverse("my_plans")).content.decode()
    assert page.count("data-subscription=") == 200
