"""Migration 0032: the ledger keeps the indexes its queries use and loses the two that every
write maintained for nothing; transaction ids stay unique throughout."""

from __future__ import annotations

import threading
import time

import psycopg
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

    migrate(BEFORE)  # and back: the indexes return, the new one goes
    assert single_column(ledger_indexes(), "wallet_id", unique=False)
    assert "ledger_wallet_fees" not in ledger_indexes()


def _insert_entry(conn, wallet_id: int, transaction_id: str) -> None:
    conn.execute(
        "INSERT INTO billing_ledgerentry (wallet_id, kind, amount, balance_after, "
        "transaction_id, actor_type, memo, created_at) "
        "VALUES (%s, 'ADJUSTMENT', 0, 0, %s, 'SYSTEM', '', now())",
        [wallet_id, transaction_id],
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_building_the_new_index_does_not_hold_the_ledgers_writers(
    postgres, developer, back_to_latest_after
):
    """A plain CREATE INDEX would queue every new ledger write behind a transaction already
    writing, for as long as the build scans the ledger; CONCURRENTLY waits itself instead."""
    apps = migrate(BEFORE)
    account, _ = apps.get_model("billing", "BillingAccount").objects.get_or_create(
        user_id=developer.pk
    )
    wallet = apps.get_model("billing", "Wallet").objects.create(
        billing_account=account, currency="USD"
    )
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params) as writing, psycopg.connect(**params, autocommit=True) as new:
        _insert_entry(writing, wallet.pk, "in-flight")  # a write not yet committed
        errors: list[BaseException] = []

        def run_migration() -> None:
            try:
                migrate(AFTER)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connection.close()

        migrating = threading.Thread(target=run_migration)
        migrating.start()
        for _ in range(400):  # until the build waits for the write in flight
            waiting = new.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE '%%CREATE INDEX%%'"
            ).fetchone()[0]
            if waiting:
                break
            time.sleep(0.025)
        assert waiting, "the index build never waited"

        new.execute("SET lock_timeout = '2s'")
        _insert_entry(new, wallet.pk, "meanwhile")  # not held: lock_timeout would raise

        writing.commit()
        migrating.join(60)
    assert not errors, errors
    assert "ledger_wallet_fees" in ledger_indexes()
