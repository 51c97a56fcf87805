"""One way to change a model's state: a compare-and-set along the model's TRANSITIONS."""

from __future__ import annotations

from typing import Any

from django.db import connection, models
from django.db.models import Field, Q
from django.utils import timezone


def transition(
    instance: models.Model, to: str, *, where: Q | None = None, locked: bool = False, **fields: Any
) -> bool:
    """Move `instance`'s row to state `to` if its model's TRANSITIONS allow it from the state
    the row is in now, writing `fields` with it. The UPDATE is conditional on that state (and
    on `where`), so of two processes racing, exactly one wins. On success `instance` is updated
    too; False when the move is not allowed or was lost. `locked`: the caller holds the row
    lock, so `instance.state` is the row's state and is not read again."""
    model = type(instance)
    rows = model._default_manager.filter(pk=instance.pk)  # lazy: no SQL unless used
    old = instance.state if locked else rows.values_list("state", flat=True).first()  # type: ignore[attr-defined]
    if old is None or to not in model.TRANSITIONS.get(old, ()):  # type: ignore[attr-defined]
        return False
    if any(field.name == "updated_at" for field in model._meta.concrete_fields):
        fields.setdefault("updated_at", timezone.now())
    if where is not None:
        changed = rows.filter(where).filter(state=old).update(state=to, **fields)
    else:
        changed = _compare_and_set(model, instance.pk, old, {"state": to, **fields})
    if changed != 1:
        return False
    instance.state = to  # type: ignore[attr-defined]
    for name, value in fields.items():
        setattr(instance, name, value)
    return True


def _compare_and_set(model: type[models.Model], pk: int, old: str, values: dict) -> int:
    """UPDATE … SET values WHERE pk = pk AND state = old, as the ORM would write it, without
    compiling a query: every Stripe payment's confirmation runs one (bench/webhook.py)."""
    targets = []
    for name, value in values.items():
        field = model._meta.get_field(name)
        assert isinstance(field, Field)
        targets.append((field, field.get_db_prep_save(value, connection)))
    quote = connection.ops.quote_name  # targets[0] is the state
    assignments = ", ".join(f"{quote(field.column)} = %s" for field, _ in targets)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} SET {assignments} "  # noqa: S608 - names from the model
            f"WHERE {quote(model._meta.pk.column)} = %s AND {quote(targets[0][0].column)} = %s",
            [*(prepared for _, prepared in targets), pk, old],
        )
        return cursor.rowcount
