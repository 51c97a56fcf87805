"""Two indexes fewer on every ledger write: the wallet's own index (ledger_wallet_recent,
on wallet and id, serves every lookup by wallet, the foreign key's checks included) and the
LIKE index PostgreSQL gets for a unique text field. That one served one query, an account's
plan fees ("My plans", by transaction id prefix), which a partial index of fee entries
serves instead, written only when a fee is. The transaction id stays unique through the same
index as before: only Django's record of it becomes a named constraint.

On PostgreSQL the indexes are built and dropped CONCURRENTLY, outside a transaction, so the
ledger's writers never wait for the build (a plain CREATE INDEX holds them for a scan of the
whole ledger). Should a concurrent build fail, PostgreSQL leaves an invalid index behind:
this drops it first, so running the migration again is safe."""

from django.db import migrations, models

TABLE = "billing_ledgerentry"
FEES = models.Index(
    fields=["wallet", "-id"], condition=models.Q(kind="FEE"), name="ledger_wallet_fees"
)


def _on_postgresql(schema_editor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


def _drop_single_column_indexes(apps, schema_editor):
    """Drop the plain (non-unique) indexes on wallet_id alone and on transaction_id alone,
    whatever this database named them (SQLite has only the first)."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    drop = "DROP INDEX CONCURRENTLY" if _on_postgresql(schema_editor) else "DROP INDEX"
    for name, info in constraints.items():
        if (
            info["index"]
            and not info["unique"]
            and not info["primary_key"]
            and info["columns"] in (["wallet_id"], ["transaction_id"])
        ):
            schema_editor.execute(f"{drop} IF EXISTS {schema_editor.quote_name(name)}")


def _recreate_single_column_indexes(apps, schema_editor):
    concurrently = " CONCURRENTLY" if _on_postgresql(schema_editor) else ""
    schema_editor.execute(
        f"CREATE INDEX{concurrently} billing_ledgerentry_wallet_id_d66e2707 ON {TABLE} (wallet_id)"
    )
    if _on_postgresql(schema_editor):
        schema_editor.execute(
            "CREATE INDEX CONCURRENTLY billing_ledgerentry_transaction_id_6585e310_like "
            f"ON {TABLE} (transaction_id varchar_pattern_ops)"
        )


def _add_fee_index(apps, schema_editor):
    model = apps.get_model("billing", "LedgerEntry")
    if not _on_postgresql(schema_editor):
        schema_editor.add_index(model, FEES)
        return
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {FEES.name}")  # a failed build's
    schema_editor.execute(FEES.create_sql(model, schema_editor, concurrently=True))


def _remove_fee_index(apps, schema_editor):
    model = apps.get_model("billing", "LedgerEntry")
    if not _on_postgresql(schema_editor):
        schema_editor.remove_index(model, FEES)
        return
    schema_editor.execute(FEES.remove_sql(model, schema_editor, concurrently=True))


class Migration(migrations.Migration):
    atomic = False  # CREATE and DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("billing", "0031_credit_lots")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(_add_fee_index, _remove_fee_index),
                migrations.RunPython(_drop_single_column_indexes, _recreate_single_column_indexes),
            ],
            state_operations=[
                migrations.AddIndex(model_name="ledgerentry", index=FEES),
                migrations.AlterField(
                    model_name="ledgerentry",
                    name="wallet",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.PROTECT,
                        related_name="entries",
                        to="billing.wallet",
                    ),
                ),
                migrations.AlterField(
                    model_name="ledgerentry",
                    name="transaction_id",
                    field=models.CharField(max_length=255),
                ),
                migrations.AddConstraint(
                    model_name="ledgerentry",
                    constraint=models.UniqueConstraint(
                        fields=("transaction_id",), name="billing_ledgerentry_transaction_id_key"
                    ),
                ),
            ],
        ),
    ]
