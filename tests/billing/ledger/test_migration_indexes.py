"""Migration 0032: the ledger keeps the indexes its queries use and loses the two that every
write maintained for nothing; transaction ids stay unique throughout."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("billing", "0031_credit_lots")]
AFTER = [("billing", "0032_ledger_entry_fewer_indexes")]


def ledger_indexes() -> dict[str, dict]:
    """Indexes and unique constraints (PostgreSQL lists a constraint's index as the
    constraint)."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "billing_ledgerentry")
    return {name: info for name, info in constraints.items() if info["index"] or info["unique"]}


def single_column(indexes: dict[str, dict], column: str, *, unique: bool) -> list[str]:
    return [
        name
        for name, info in indexes.items()
        if info["columns"] == [column] and info["unique"] == unique and not info["primary_key"]
    ]


@pytest.fixture
def back_to_latest_after():
    yield
    call_command("migrate", verbosity=0)  # whatever happened, for the tests after this one


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_two_unused_indexes_go_and_transaction_ids_stay_unique(developer, back_to_latest_after):
    migrate(BEFORE)
    before = ledger_indexes()
    assert single_column(before, "wallet_id", unique=False)
    if connection.vendor == "postgresql":  # SQLite has no LIKE index to drop
        assert single_column(before, "transaction_id", unique=False)

    apps = migrate(AFTER)
    after = ledger_indexes()
    assert single_column(after, "wallet_id", unique=False) == []
    assert single_column(after, "transaction_id", unique=False) == []
    assert single_column(after, "transaction_id", unique=True)
    assert {"ledger_wallet_recent", "ledger_wallet_top_ups", "ledger_wallet_fees"} <= set(after)

    Account, Wallet, LedgerEntry = (
        apps.get_model("billing", name) for name in ("BillingAccount", "Wallet", "LedgerEntry")
    )
    account, _ = Account.objects.get_or_create(user_id=developer.pk)
    wallet = Wallet.objects.create(billing_account=account, currency="USD")
    entry = {"wallet": wallet, "kind": "ADJUSTMENT", "amount": 1, "balance_after": 1,
             "transaction_id": "once", "actor_type": "SYSTEM"}  # fmt: skip
    LedgerEntry.objects.create(**entry)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(**entry)

    migrate(BEFORE)  # and back: the indexes return
    assert single_column(ledger_indexes(), "wallet_id", unique=False)
