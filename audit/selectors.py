"""Reads of the audit trail: which models are audited, and the trail as the admin shows it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.apps import apps
from django.db import connection, models

from audit.models import BEFORE, AuditEntry, AuditEvent


def event_models() -> tuple[type[models.Model], ...]:
    """Every audited model's event table, this app's and those apps above it declare
    (`audit.models.audited`): the concrete subclasses of `AuditEvent`."""
    return tuple(m for m in apps.get_models() if issubclass(m, AuditEvent) and not m._meta.proxy)


def audited_model(event_model: type[models.Model]) -> type[models.Model]:
    """The domain model an event table records (not the proxy its triggers hang on)."""
    return event_model.pgh_tracked_model._meta.concrete_model


# "orders.order" -> its event table. Read when the admin loads, after every app's models.
EVENT_MODEL_BY_LABEL: dict[str, type[models.Model]] = {
    audited_model(m)._meta.label_lower: m for m in event_models()
}


def audit_trail_available() -> bool:
    """The trail is written by PostgreSQL triggers; other databases have none."""
    return connection.vendor == "postgresql"


def audit_entries(*, label: str | None = None, object_id: str | None = None) -> Any:
    """The shown entries (add, change, delete; not the `before` rows a change is diffed
    against), of one audited model (`"orders.order"`) and one object if given."""
    if not audit_trail_available():
        return AuditEntry.no_objects.all()
    event_models = [EVENT_MODEL_BY_LABEL[label]] if label else list(EVENT_MODEL_BY_LABEL.values())
    entries = AuditEntry.objects.across(*event_models).exclude(pgh_label=BEFORE)
    if object_id is not None:
        entries = entries.filter(pgh_obj_id=object_id)
    return entries


def object_model_label(entry: AuditEntry) -> str:
    """`orders.order` for an entry of the proxy `audit.AuditedOrder`."""
    return apps.get_model(entry.pgh_obj_model)._meta.concrete_model._meta.label_lower


def changes_describe(entry: AuditEntry) -> Iterator[tuple[str, Any, Any]]:
    """(field, before, after) of each field a change changed, `updated_at` left out."""
    for field, (before, after) in sorted((entry.pgh_diff or {}).items()):
        if field != "updated_at":
            yield field, before, after
