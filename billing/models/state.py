"""One way to change a model's state: a compare-and-set along the model's TRANSITIONS."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
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
    rows = model._default_manager.filter(pk=instance.pk)
    old = instance.state if locked else rows.values_list("state", flat=True).first()  # type: ignore[attr-defined]
    if old is None or to not in model.TRANSITIONS.get(old, ()):  # type: ignore[attr-defined]
        return False
    if where is not None:
        rows = rows.filter(where)
    if any(field.name == "updated_at" for field in model._meta.concrete_fields):
        fields.setdefault("updated_at", timezone.now())
    if rows.filter(state=old).update(state=to, **fields) != 1:
        return False
    instance.state = to  # type: ignore[attr-defined]
    for name, value in fields.items():
        setattr(instance, name, value)
    return True
