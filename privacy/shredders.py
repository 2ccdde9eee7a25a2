"""Every store of a customer's personal data, one small shredder each (after pretix's
shredders): it exports what its store holds about a subject and redacts it, and the
law's keep-rule for that store, where there is one, is written beside it.

A subject is a set of orders and prescriptions (one order past its retention period, one
prescription past its keep period, or all of one customer's). Redacting is idempotent: a
personal value becomes `REDACTED`, a value already redacted or empty stays as it is, and
the number of rows changed comes back, so a second run reports 0. A shredder never
commits: the caller runs all of them for one subject in one transaction.

A store that holds no name, phone or address (shipments, webhook deliveries) is here too:
it is part of what a customer's export holds, and its entry says why nothing in it needs
redacting. docs/PRIVACY.md describes every store listed in `SHREDDERS`.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Prefetch, Q
from django.utils import timezone

from logistics.models import Shipment, ShipmentUpdate
from notifications.models import Notification, WebhookDelivery
from notifications.serializers import WebhookDeliveryOut
from orders.enums import EventType
from orders.models import Order, OrderEvent, Return
from orders.selectors import order_related
from orders.serializers import OrderOut, ReturnOut
from payments.models import Payment, PaymentAttempt
from prescriptions.api import PrescriptionOut
from prescriptions.models import H1RegisterEntry, Prescription

logger = logging.getLogger(__name__)

# What every redacted value becomes.
REDACTED = "[redacted]"
# Address and contact keys that stay: a pincode, city and state name an area of thousands
# of people, not a person, and returns, serviceability and demand statistics read them.
AREA_KEYS = frozenset({"city", "state", "pincode"})


@dataclass(frozen=True)
class Subject:
    """Whose data: orders and prescriptions by id."""

    order_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)
    prescription_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.order_ids or self.prescription_ids)


@dataclass(frozen=True)
class Kept:
    """A record the law keeps as it is for now: which, why, and until when."""

    record: str
    why: str
    until: datetime.date

    def as_dict(self) -> dict[str, str]:
        return {"record": self.record, "why": self.why, "until": self.until.isoformat()}


def redacted(value: Any) -> Any:
    """A personal value as it is kept after redaction: the marker, or nothing to hide."""
    return REDACTED if value not in ("", None) else value


def years_after(day: datetime.date, years: int) -> datetime.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February, in a year without one
        return day.replace(year=day.year + years, day=28)


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


class Shredder:
    """One store of personal data. `section` is its key in a customer's export (None when
    another section already carries it); `store` the tables and columns; `holds` what
    personal data; `why` why it is held; `keep_rule` the law's rule that keeps it longer
    than the retention period, "" when none does."""

    section: ClassVar[str | None]
    store: ClassVar[str]
    holds: ClassVar[str]
    why: ClassVar[str]
    keep_rule: ClassVar[str] = ""
    # False for a store listed for the export only: nothing in it needs redacting.
    redacts: ClassVar[bool] = True

    def export(self, subject: Subject) -> list[dict[str, Any]]:
        return []

    def redact(self, subject: Subject, *, now: datetime.datetime) -> int:
        """Redact what the subject's rows hold (what the keep-rule lets go); rows changed."""
        return 0

    def kept(self, subject: Subject, *, now: datetime.datetime) -> list[Kept]:
        """The subject's records the keep-rule holds back from `redact` now."""
        return []


def _update_changed(
    model: type[models.Model], rows: Iterable[models.Model], fields: tuple[str, ...]
) -> int:
    """Set `fields` to their redacted values on the rows where that changes something."""
    changed = 0
    for row in rows:
        values = {name: redacted(getattr(row, name)) for name in fields}
        if any(values[name] != getattr(row, name) for name in fields):
            changed += model.objects.filter(pk=row.pk).update(**values)
    return changed


def _mapping_redacted(mapping: dict[str, Any] | None) -> dict[str, Any] | None:
    if not mapping:
        return mapping
    return {k: v if k in AREA_KEYS else redacted(v) for k, v in mapping.items()}


class OrderShredder(Shredder):
    section = "orders"
    store = "orders_order.delivery_address, orders_order.contact"
    holds = (
        "The delivery address (name, street lines, phone, e-mail when given) or a pickup "
        "order's contact (name, phone, e-mail)."
    )
    why = "To deliver the order and tell the customer about it (contract)."

    def export(self, subject: Subject) -> list[dict[str, Any]]:
        orders = list(
            Order.objects.filter(pk__in=subject.order_ids)
            .prefetch_related("lines", Prefetch("events", OrderEvent.objects.order_by("pk")))
            .order_by("created_at", "pk")
        )
        return OrderOut(orders, many=True, context={"related": order_related(orders)}).data

    def redact(self, subject: Subject, *, now: datetime.datetime) -> int:
        changed = 0
        for order in Order.objects.filter(pk__in=subject.order_ids).only(
            "pk", "delivery_address", "contact"
        ):
            address = _mapping_redacted(order.delivery_address)
            contact = _mapping_redacted(order.contact)
            if (address, contact) != (order.delivery_address, order.contact):
                changed += Order.objects.filter(pk=order.pk).update(
                    delivery_address=address, contact=contact, updated_at=now
                )
        return changed


# Event data that carries what a person wrote or a payment address; the rest is codes,
# amounts, skus and ids. `reason` is free text only in a refund (the note ops or the
# client gave); elsewhere it is a code.
EVENT_PERSONAL_KEYS = frozenset({"note", "payout_to"})
EVENT_FREE_TEXT_REASON = frozenset({EventType.PAYMENT_REFUNDED})


class OrderEventShredder(Shredder):
    # Exported as the orders' `events`.
    section = None
    store = "orders_orderevent.data (also every outbound webhook's body)"
    holds = (
        "Notes people wrote (cancellation, return, delivery and pickup notes, a refund's "
        "reason) and the UPI id a cash-on-delivery refund was paid to."
    )
    why = "The order's timeline, and the outbox of the client's webhooks (contract)."

    def redact(self, subject: Subject, *, now: datetime.datetime) -> int:
        changed = 0
        for event in OrderEvent.objects.filter(order_id__in=subject.order_ids).only(
            "pk", "type", "data"
        ):
            data = dict(event.data or {})
            keys = EVENT_PERSONAL_KEYS | (
                {"reason"} if event.type in EVENT_FREE_TEXT_REASON else set()
            )
            for key in keys & data.keys():
                data[key] = redacted(data[key])
            if data != event.data:
                changed += OrderEvent.objects.filter(pk=event.pk).update(data=data)
        return changed


class NotificationShredder(Shredder):
    section = "messages"
    store = "notifications_notification.to, .subject, .text"
    holds = "Each SMS and e-mail sent: the phone number or address, and the text as sent."
    why = "Sent once and retried with the same text; shown to ops who resend it (contract)."

    FIELDS = ("to", "subject", "text")

    def export(self, subject: Subject) -> list[dict[str, Any]]:
        return [
            {
                "order_id": str(n.order_id),
                "event_type": n.event_type,
                "channel": n.channel,
                "to": n.to,
                "subject": n.subject,
                "text": n.text,
                "status": n.status,
                "created_at": _iso(n.created_at),
            }
            for n in Notification.objects.filter(order_id__in=subject.order_ids).order_by("pk")
        ]

    def redact(self, subject: Subject, *, now: datetime.datetime) -> int:
        rows = Notification.objects.filter(order_id__in=subject.order_ids).only("pk", *self.FIELDS)
        return _update_changed(Notification, rows, self.FIELDS)


class ReturnShredder(Shredder):
    section = "returns"
    store = "orders_return.note, .refund_vpa, .decision_note"
    holds = "The customer's note on a return, the UPI id for a COD refund, ops' note on it."
    why = "To decide the return and pay the refund (contract)."

    FIELDS = ("note", "refund_vpa", "decision_note")

    def export(self, subject: Subject) -> list[dict[str, Any]]:
        returns = (
            Return.objects.filter(order_id__in=subject.order_ids)
            .prefetch_related("lines")
            .order_by("created_at", "pk")
        )
        return [
            {**ReturnOut(r).data, "order_id": str(r.order_id), "refund_vpa": r.refund_vpa}
            for r in returns
        ]

    def redact(self, subject: Subject, *, now: datetime.datetime) -> int:
        rows = Return.objects.filter(order_id__in=subject.order_ids).only("pk", *self.FIELDS)
        return _update_changed(Return, rows, self.FIELDS)


class PaymentShredder(Shredder):
    section = "payments"
    store = "payments_paymentattempt.vpa, .reason"
    holds = "The UPI id a refund was paid out to; a refund's reason as written."
    why = "To pay the refund once, and prove it (contract; accounting)."

    FIELDS = ("vpa", "reason")

    def export(self, subject: Subject) -> list[dict[str, Any]]:
        payments = Payment.objects.filter(order_id__in=subject.order_ids).prefetch_related(
            Prefetch("attempts", PaymentAttempt.objects.filter(kind="refund").order_by("pk"))
        )
        return [
            {
                "order_id": str(p.order_id),
                "method": p.method,
                "amount": f"{p.amount:.2f}",
                "currency": p.currency,
                "status": p.status,
                "gateway": p.gateway or None,
                "reference": p.reference or None,
                "refunded_amount": f"{p.refunded_amount:.2f}",
                "refunds": [
                    {
                        "amount": f"{a.amount:.2f}" if a.amount is not None else None,
                        "status": a.status,
                        "reason": a.reason,
                        "vpa": a.vpa or None,
                        "created_at": _iso(a.created_at),
                    }
                    for a in p.attempts.all()
                ],
                "created_at": _iso(p.created_at),
            }
            for p in payments.order_by("created_at", "pk")
        ]

    def redact(self, subject: Subject, *, now: datetime.datetime) -> int:
        rows = PaymentAttempt.objects.filter(payment__order_id__in=subject.order_ids).only(
            "pk", *self.FIELDS
        )
        return _update_changed(PaymentAttempt, rows, self.FIELDS)


class ShipmentShredder(Shredder):
    section = "shipments"
    store = "logistics_shipment, _shipmentitem, _shipmentupdate, _shipmentattempt.request"
    holds = (
        "No name, phone or street: the centre, courier, AWB, delivery OTP, the courier's "
        "updates, and the pincode sent to the courier (kept, as the address's pincode is)."
    )
    why = "To ship the order and trace its batches (contract; recalls)."
    redacts = False

    def export(self, subject: Subject) -> list[dict[str, Any]]:
        shipments = (
            Shipment.objects.filter(order_id__in=subject.order_ids)
            .prefetch_related("items", Prefetch("updates", ShipmentUpdate.objects.order_by("pk")))
            .order_by("created_at", "pk")
        )
        return [
            {
                "order_id": str(s.order_id),
                "center": s.center,
                "partner": s.partner,
                "awb": s.awb or None,
                "status": s.status,
                "items": [
                    {"sku": i.sku, "batch": i.batch, "quantity": i.quantity} for i in s.items.all()
                ],
                "updates": [
                    {"status": u.status, "at": _iso(u.at), "reason": u.reason or None}
                    for u in s.updates.all()
                ],
                "created_at": _iso(s.created_at),
            }
            for s in shipments
        ]


class WebhookDeliveryShredder(Shredder):
    section = "webhook_deliveries"
    store = "notifications_webhookdelivery, notifications_webhookattempt"
    holds = (
        "No personal data of its own: each delivery's body is its order event, rendered "
        "when it is sent (redacted with the event's data)."
    )
    why = "To deliver each event to the client once, and resend it (contract)."
    redacts = False

    def export(self, subject: Subject) -> list[dict[str, Any]]:
        deliveries = WebhookDelivery.objects.filter(order_id__in=subject.order_ids).order_by("pk")
        return [dict(row) for row in WebhookDeliveryOut(deliveries, many=True).data]


# Drugs and Cosmetics Rules, 1945, rule 65: a prescription dispensed from is kept two
# years; the Schedule H1 register three.
PRESCRIPTION_KEEP_YEARS = 2
H1_REGISTER_KEEP_YEARS = 3


class PrescriptionShredder(Shredder):
    section = "prescriptions"
    store = (
        "prescriptions_prescription.patient_name, .review_note, .image (and the file), "
        "django_admin_log.object_repr of prescriptions"
    )
    holds = "The patient's name, the pharmacist's note, the prescription's image."
    why = "To check the order against the prescription (legal obligation)."
    keep_rule = (
        f"Kept {PRESCRIPTION_KEEP_YEARS} years from its date of issue or upload, whichever "
        "is later (Drugs and Cosmetics Rules, 1945, rule 65); then redacted."
    )

    FIELDS = ("patient_name", "review_note")

    @staticmethod
    def keep_until(prescription: Prescription) -> datetime.date:
        uploaded = timezone.localdate(prescription.created_at)
        return years_after(max(prescription.issued_on, uploaded), PRESCRIPTION_KEEP_YEARS)

    def _of(self, subject: Subject) -> models.QuerySet[Prescription]:
        return Prescription.objects.filter(pk__in=subject.prescription_ids).order_by(
            "created_at", "pk"
        )

    def export(self, subject: Subject) -> list[dict[str, Any]]:
        documents = []
        for prescription in self._of(subject).prefetch_related("items"):
            document = dict(PrescriptionOut(prescription).data)
            document["image"] = _image_export(prescription)
            documents.append(document)
        return documents

    def redact(self, subject: Subject, *, now: datetime.datetime) -> int:
        changed = 0
        today = timezone.localdate(now)
        for prescription in self._of(subject):
            if self.keep_until(prescription) > today:
                continue
            values = {name: redacted(getattr(prescription, name)) for name in self.FIELDS}
            image = prescription.image.name
            if image or any(values[n] != getattr(prescription, n) for n in self.FIELDS):
                changed += Prescription.objects.filter(pk=prescription.pk).update(
                    **values, image="", updated_at=now
                )
            changed += (
                LogEntry.objects.filter(
                    content_type=ContentType.objects.get_for_model(Prescription),
                    object_id=str(prescription.pk),
                )
                .exclude(object_repr=REDACTED)
                .update(object_repr=REDACTED)
            )
            if image:
                # Last, inside the caller's transaction: a file that cannot be deleted
                # rolls the redaction back (the next run tries again); a commit that fails
                # after it leaves a row the next run finds and redacts.
                prescription.image.storage.delete(image)
        return changed

    def kept(self, subject: Subject, *, now: datetime.datetime) -> list[Kept]:
        today = timezone.localdate(now)
        return [
            Kept(
                record=f"prescription {p.pk}",
                why="prescription record (Drugs and Cosmetics Rules, 1945, rule 65)",
                until=self.keep_until(p),
            )
            for p in self._of(subject)
            if self.keep_until(p) > today and p.patient_name != REDACTED
        ]


def _image_export(prescription: Prescription) -> dict[str, Any] | None:
    if not prescription.image:
        return None
    try:
        with prescription.image.open("rb") as image:
            content = image.read()
    except OSError:
        logger.error("prescription %s: image %s unreadable", prescription.pk, prescription.image)
        return {"name": prescription.image.name.rsplit("/", 1)[-1], "missing": True}
    return {
        "name": prescription.image.name.rsplit("/", 1)[-1],
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "base64": base64.b64encode(content).decode(),
    }


class H1RegisterShredder(Shredder):
    section = "h1_register"
    store = "prescriptions_h1registerentry.patient_name"
    holds = "The patient's name on each Schedule H1 register row."
    why = "The Schedule H1 register (legal obligation)."
    keep_rule = (
        f"Kept {H1_REGISTER_KEEP_YEARS} years from the entry (Drugs and Cosmetics Rules, "
        "1945, rule 65(3)(b)); then redacted."
    )

    @staticmethod
    def keep_until(entry: H1RegisterEntry) -> datetime.date:
        return years_after(timezone.localdate(entry.recorded_at), H1_REGISTER_KEEP_YEARS)

    def _of(self, subject: Subject) -> models.QuerySet[H1RegisterEntry]:
        return H1RegisterEntry.objects.filter(
            Q(order_id__in=subject.order_ids) | Q(prescription_id__in=subject.prescription_ids)
        ).order_by("recorded_at", "pk")

    def export(self, subject: Subject) -> list[dict[str, Any]]:
        return [
            {
                "recorded_at": _iso(e.recorded_at),
                "order_id": str(e.order_id),
                "order_number": e.order_number,
                "prescription_id": str(e.prescription_id),
                "entry_type": e.entry_type,
                "patient_name": e.patient_name,
                "doctor_name": e.doctor_name,
                "doctor_registration_no": e.doctor_registration_no,
                "sku": e.sku,
                "drug_name": e.drug_name,
                "batch": e.batch,
                "quantity": e.quantity,
            }
            for e in self._of(subject)
        ]

    def redact(self, subject: Subject, *, now: datetime.datetime) -> int:
        today = timezone.localdate(now)
        due = [e for e in self._of(subject).only("pk", "recorded_at", "patient_name")]
        due = [e for e in due if self.keep_until(e) <= today]
        return _update_changed(H1RegisterEntry, due, ("patient_name",))

    def kept(self, subject: Subject, *, now: datetime.datetime) -> list[Kept]:
        today = timezone.localdate(now)
        return [
            Kept(
                record=f"H1 register {e.order_number} {e.sku} batch {e.batch} ({e.entry_type})",
                why="Schedule H1 register (Drugs and Cosmetics Rules, 1945, rule 65(3)(b))",
                until=self.keep_until(e),
            )
            for e in self._of(subject)
            if self.keep_until(e) > today and e.patient_name != REDACTED
        ]


# Every store of personal data, in the order a customer's export lists them.
SHREDDERS: list[Shredder] = [
    OrderShredder(),
    OrderEventShredder(),
    ReturnShredder(),
    PaymentShredder(),
    ShipmentShredder(),
    NotificationShredder(),
    WebhookDeliveryShredder(),
    PrescriptionShredder(),
    H1RegisterShredder(),
]


def shred(subject: Subject, *, now: datetime.datetime) -> dict[str, int]:
    """Run every shredder on the subject (inside the caller's transaction): rows changed
    per store, the stores that changed nothing left out."""
    rows = {type(s).__name__: s.redact(subject, now=now) for s in SHREDDERS}
    return {name: count for name, count in rows.items() if count}


def kept(subject: Subject, *, now: datetime.datetime) -> list[Kept]:
    return [k for s in SHREDDERS for k in s.kept(subject, now=now)]
