"""Hot, constant statements of plain SQL, for the calls a gateway makes many times a second.

On PostgreSQL each statement is prepared once per connection and then only executed: for the
limits check's one read, planning took 0.5 ms and running it 0.09 ms (EXPLAIN ANALYZE). Django
binds parameters on the client and so never prepares; these statements alone use a
server-binding cursor. (Behind PgBouncer, prepared statements need its transaction mode's
`max_prepared_statements`, PgBouncer 1.21 or later.) Elsewhere, a plain cursor.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import connection, models
from django.db.backends.utils import CursorWrapper

M = TypeVar("M", bound=models.Model)


def fetch_one(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """The first row of `sql`."""
    with _cursor() as cursor:
        _execute(cursor, sql, params)
        return cursor.fetchone()


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Every row of `sql`."""
    with _cursor() as cursor:
        _execute(cursor, sql, params)
        return cursor.fetchall()


def one_of(column: str) -> str:
    """SQL for "`column` is one of the list parameter `list_param` makes": the same text
    whatever the list's length, so the statement is prepared once."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)"
    return f"{column} IN (SELECT value FROM json_each(%s))"  # noqa: S608 - a column name


def list_param(values: Iterable[Any]) -> Any:
    """A list as one parameter of `one_of` (an array on PostgreSQL, JSON text on SQLite)."""
    if connection.vendor == "postgresql":
        return list(values)
    return json.dumps(list(values))


def model_columns(model: type[models.Model], alias: str) -> list[str]:
    """Every concrete column of `model`, qualified by `alias`, in the order `instance_from_row`
    reads them."""
    quote = connection.ops.quote_name
    return [f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields]


def instance_from_row(model: type[M], values: Sequence[Any]) -> M:
    """A model instance from all its concrete columns, in order, as a plain cursor returns
    them, converted the way the ORM converts them (SQLite hands back naive times, integers for
    booleans)."""
    names, converters = _converters(model)
    converted = []
    for value, (column, field_converters) in zip(values, converters, strict=True):
        for converter in field_converters:
            value = converter(value, column, connection)
        converted.append(value)
    return model.from_db(connection.alias, names, converted)


def aware(value: datetime | str | None) -> datetime | None:
    """A time read by a plain cursor: PostgreSQL's is aware, SQLite's naive UTC (or text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@functools.cache
def _converters(model: type[models.Model]) -> tuple[list[str], list[tuple[Any, list[Any]]]]:
    names, converters = [], []
    for field in model._meta.concrete_fields:
        column = field.get_col(model._meta.db_table)
        names.append(field.attname)
        backend = connection.ops.get_db_converters(column)
        converters.append((column, backend + field.get_db_converters(connection)))  # type: ignore[attr-defined]
    return names, converters


def _execute(cursor: CursorWrapper, sql: str, params: Sequence[Any]) -> None:
    try:
        cursor.execute(sql, params)
    finally:  # a statement that failed (a unique index) is logged too
        if connection.queries_logged and connection.queries_log[-1]["sql"] is None:
            # A prepared statement is sent by name: log its text, as for every other query.
            connection.queries_log[-1]["sql"] = sql


@contextmanager
def _cursor() -> Iterator[CursorWrapper]:
    """Django's cursor wrapper (so each statement is logged and counted like every other),
    around a server-binding cursor on PostgreSQL."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    import psycopg  # noqa: PLC0415 - only on PostgreSQL

    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    raw = connection.connection
    # Django turns psycopg's automatic preparing off for its own (client-binding) cursors,
    # which never prepare whatever this says; 0 prepares this cursor's statements at once.
    raw.prepare_threshold = 0
    with psycopg.Cursor(raw) as server_binding:
        yield (
            connection.make_debug_cursor(server_binding)  # type: ignore[arg-type]
            if connection.queries_logged
            else connection.make_cursor(server_binding)  # type: ignore[arg-type]
        )
