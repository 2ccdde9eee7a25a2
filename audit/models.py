"""The audit trail of staff changes: one append-only event table per audited model.

Rows are written by PostgreSQL triggers (django-pghistory on django-pgtrigger), so a change
is recorded however it is made: a form save, a bulk `update()` in a service, raw SQL. The
triggers fire only inside a staff member's admin request (`audit.middleware`) or a
command run in an audit context (`audit.context.acting`), whose user, action and reason
travel with each row (`pgh_context`); the pipeline's own writes are in each order's
timeline instead. An update writes two rows in one go, the row as it was
(`before`) and as it is (`change`), so each change carries its exact before and after.

Personal data (addresses, phone numbers, patient names, UPI ids, the notes on returns and
prescriptions) and secrets are not copied into the trail: it is never edited or deleted, so
it must hold nothing that the retention rules or a customer's erasure would have to remove.

On SQLite there are no triggers: the tables exist and stay empty.
"""

from __future__ import annotations

from typing import Any

import pghistory
import pgtrigger
from django.db import models
from pghistory.models import Event, Events

from audit import sql
from core.models import ApiClient, ClientAPIKey
from inventory.models import Product, StockBatch
from logistics.models import Shipment
from orders.models import Order, Return, ReturnLine
from payments.models import Payment
from prescriptions.models import Prescription, PrescriptionItem


class AuditRecordError(Exception):
    """The audit trail is append-only: its rows are never changed or deleted."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AuditRecordError("audit rows are never changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditRecordError("audit rows are never deleted")


class AuditEvent(Event):
    """Base of every event table: refused by the ORM here, and by a database trigger
    (`pgtrigger.Protect`) for anything that goes around the ORM."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AuditRecordError("audit rows are never changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditRecordError("audit rows are never deleted")


class StaffChange(pgtrigger.AnyChange):
    """An update of a tracked field (not only of `updated_at`), made during a staff
    member's admin request."""

    def __init__(self) -> None:
        super().__init__(exclude_auto=True)

    def resolve(self, model: type[models.Model]) -> str:
        return f"(({super().resolve(model)}) AND {sql.IN_STAFF_CONTEXT})"


def _in_staff_context() -> pgtrigger.Condition:
    return pgtrigger.Condition(sql.IN_STAFF_CONTEXT)


# Labels of the rows an audited model gets; BEFORE is the helper row a change is diffed
# against (pghistory's diff compares an event with the one before it of the same object).
ADD, BEFORE, CHANGE, DELETE = "add", "before", "change", "delete"
SHOWN_LABELS = (ADD, CHANGE, DELETE)


def audited(
    model: type[models.Model], *, exclude: tuple[str, ...] = (), app_label: str = "audit"
) -> type[models.Model]:
    """The abstract event model for `model`, to subclass in `app_label`'s models module
    (`class OrderAudit(audited(Order)): pass`) so it gets a plain name. `exclude`: the
    fields holding personal data or secrets, which the trail must not copy.

    The triggers go on a proxy of the model in `app_label`, so that their migrations are
    that app's: the domain models below audit are audited here and know nothing of the
    trail; an app above audit (privacy) declares its own. Every subclass is in the trail
    the admin lists (`audit.selectors.event_models`)."""
    proxy = type(
        f"Audited{model.__name__}",
        (model,),
        {
            "__module__": f"{app_label}.models",
            "Meta": type("Meta", (), {"proxy": True, "app_label": app_label}),
        },
    )
    return pghistory.create_event_model(
        proxy,
        pghistory.InsertEvent(ADD, condition=_in_staff_context()),
        # Trigger names fire in alphabetical order: the "before" row is written first.
        pghistory.UpdateEvent(BEFORE, row="OLD", condition=StaffChange()),
        pghistory.UpdateEvent(CHANGE, row="NEW", condition=StaffChange()),
        pghistory.DeleteEvent(DELETE, condition=_in_staff_context()),
        exclude=list(exclude) or None,
        # The context lives in the row itself: one append-only row holds the whole record.
        context_field=pghistory.ContextJSONField(),
        context_id_field=pghistory.ContextUUIDField(),
        # Objects may be deleted; their trail stays.
        obj_field=pghistory.ObjForeignKey(related_name="+", related_query_name="+"),
        base_model=AuditEvent,
        # A database trigger refuses UPDATE and DELETE of the event rows.
        append_only=True,
        app_label=app_label,
        model_name=f"{model.__name__}AuditBase",
    )


class OrderAudit(audited(Order, exclude=("delivery_address", "contact", "payment_token"))):
    pass


# The customer's and ops' notes on a return and the pharmacist's on a prescription are
# personal data a customer's erasure redacts: an erasure in the trail would copy them.
class ReturnAudit(audited(Return, exclude=("refund_vpa", "note", "decision_note"))):
    pass


class ReturnLineAudit(audited(ReturnLine)):
    pass


class PaymentAudit(audited(Payment)):
    pass


class ShipmentAudit(audited(Shipment, exclude=("delivery_otp",))):
    pass


class StockBatchAudit(audited(StockBatch)):
    pass


class ProductAudit(audited(Product)):
    pass


class PrescriptionAudit(audited(Prescription, exclude=("patient_name", "image", "review_note"))):
    pass


class PrescriptionItemAudit(audited(PrescriptionItem)):
    pass


class ApiClientAudit(audited(ApiClient, exclude=("webhook_secret", "webhook_secret_previous"))):
    pass


class ClientAPIKeyAudit(audited(ClientAPIKey, exclude=("hashed_key",))):
    pass


class AuditEntry(Events):
    """The trail across every audited model, as the admin lists it: one row per change,
    with its before/after (`pgh_diff`) and who did it, with which action and why."""

    user_id = pghistory.ProxyField("pgh_context__user", models.IntegerField(null=True))
    username = pghistory.ProxyField("pgh_context__username", models.TextField(null=True))
    action = pghistory.ProxyField("pgh_context__action", models.TextField(null=True))
    reason = pghistory.ProxyField("pgh_context__reason", models.TextField(null=True))
    url = pghistory.ProxyField("pgh_context__url", models.TextField(null=True))

    class Meta:
        proxy = True
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
