"""Migration 0031: each positive balance becomes one lot dated at migration time; a negative
or zero balance is none; every wallet's lots count its entries so far."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("billing", "0030_balance_alerts")]
AFTER = [("billing", "0031_credit_lots")]


@pytest.fixture
def back_to_latest_after():
    yield
    call_command("migrate", verbosity=0)  # whatever happened, for the tests after this one


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_existing_balances_become_one_lot_each(
    developer, other_developer, portal_admin, back_to_latest_after
):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Wallet, LedgerEntry = (
        old.get_model("billing", "Wallet"),
        old.get_model("billing", "LedgerEntry"),
    )
    Account = old.get_model("billing", "BillingAccount")
    balances = {developer: 12_400_000_000, other_developer: -3_000_000_000, portal_admin: 0}
    wallets = {}
    for n, (user, balance) in enumerate(balances.items()):
        account, _ = Account.objects.get_or_create(user_id=user.pk)
        wallet = Wallet.objects.create(billing_account=account, currency="USD", balance=balance)
        LedgerEntry.objects.create(
            wallet=wallet, kind="ADJUSTMENT", amount=balance, balance_after=balance,
            transaction_id=f"before-{n}", actor_type="SYSTEM",
        )  # fmt: skip
        wallets[user] = wallet.pk
    started = timezone.now()

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    CreditLot, Wallet = new.get_model("billing", "CreditLot"), new.get_model("billing", "Wallet")

    [lot] = CreditLot.objects.all()
    assert (lot.wallet_id, lot.amount, lot.remaining) == (
        wallets[developer],
        12_400_000_000,
        12_400_000_000,
    )
    assert started <= lot.created_at <= timezone.now()
    assert lot.expires_at - lot.created_at == timedelta(days=365)
    for user, wallet_id in wallets.items():
        last = (
            new.get_model("billing", "LedgerEntry").objects.filter(wallet_id=wallet_id).latest("id")
        )
        assert Wallet.objects.get(pk=wallet_id).lots_counted_through == last.pk, user
