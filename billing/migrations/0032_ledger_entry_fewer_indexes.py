"""Two indexes fewer on every ledger write: the wallet's own index (ledger_wallet_recent,
on wallet and id, serves every lookup by wallet, the foreign key's checks included) and the
LIKE index PostgreSQL gets for a unique text field. That one served one query, an account's
plan fees ("My plans", by transaction id prefix), which a partial index of fee entries
serves instead, written only when a fee is. The transaction id stays unique through the same
index as before: only Django's record of it becomes a named constraint, so nothing is
rebuilt on a large ledger."""

from django.db import migrations, models


def _drop_single_column_indexes(apps, schema_editor):
    """Drop the plain (non-unique) indexes on wallet_id alone and on transaction_id alone,
    whatever this database named them (SQLite has only the first)."""
    table = "billing_ledgerentry"
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    for name, info in constraints.items():
        if (
            info["index"]
            and not info["unique"]
            and not info["primary_key"]
            and info["columns"] in (["wallet_id"], ["transaction_id"])
        ):
            schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def _recreate_single_column_indexes(apps, schema_editor):
    schema_editor.execute(
        "CREATE INDEX billing_ledgerentry_wallet_id_d66e2707 ON billing_ledgerentry (wallet_id)"
    )
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX billing_ledgerentry_transaction_id_6585e310_like "
            "ON billing_ledgerentry (transaction_id varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0031_credit_lots")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(_drop_single_column_indexes, _recreate_single_column_indexes)
            ],
            state_operations=[
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
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(
                condition=models.Q(kind="FEE"),
                fields=["wallet", "-id"],
                name="ledger_wallet_fees",
            ),
        ),
    ]
