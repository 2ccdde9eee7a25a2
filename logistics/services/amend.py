"""Units taken out of parcels that are booked but not yet picked up (an order's lines
cancelled), and the partners told.

The units leave our shipment items in the caller's transaction. The partner hears of it
after commit, from a retried task: a parcel left with units gets its booking amended (the
whole new content, so amendments that arrive late or twice still leave the partner with
what the parcel holds now); a parcel left empty is cancelled the way an ended order's
bookings are (`booking.shipment_cancel_one`). Each amendment has its key,
`order:<id>:amend:<n>:<centre>`, so a retry is never a second amendment. A partner that
refuses (the courier picked the parcel up meanwhile) is logged as an error: the cancelled
units went out with the parcel, and only a person can get them back.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.http import ExternalRejected
from logistics import partners
from logistics.enums import ShipmentStatus
from logistics.models import Shipment, ShipmentItem

# The one path that cancels a booking with its partner, retries and unknown outcomes
# included; a parcel emptied by cancelled lines goes the same way as an ended order's.
from logistics.services.booking import shipment_cancel_one

logger = logging.getLogger(__name__)

# What sending an amendment did.
AMENDED = "amended"
CANCELLED = "cancelled"  # the parcel was left empty: its booking is cancelled
GONE = "gone"  # the shipment was cancelled meanwhile (the whole order, say): nothing to tell
TOO_LATE = "too_late"  # picked up before the partner heard: the units went with the parcel


class ShipmentNotBooked(Exception):
    """A parcel holding the units has left the booked state (picked up, or further): what
    it holds can no longer change."""

    def __init__(self, awb: str, status: str) -> None:
        super().__init__(f"shipment {awb or '(unbooked)'} is {status}, not booked")
        self.awb, self.status = awb, status


class UnitsNotInShipment(Exception):
    """The order's parcels hold fewer of these units than asked to take out."""


@dataclass(frozen=True)
class ParcelUnits:
    """Units of one sku and batch, in the parcel of the centre they come from."""

    center: str
    sku: str
    batch: str
    quantity: int


@dataclass(frozen=True)
class UnitsCancelled:
    """The shipments (ids) that still hold units and get their booking amended, and those
    left empty, whose booking is cancelled."""

    amended: tuple[int, ...]
    emptied: tuple[int, ...]


def amendment_key(order_id: uuid.UUID, number: int, center: str) -> str:
    return f"order:{order_id}:amend:{number}:{center}"


def shipment_units_cancel(
    *, order_id: uuid.UUID, units: list[ParcelUnits], number: int
) -> UnitsCancelled:
    """Take `units` out of the order's parcels; `number` numbers this change among the
    order's (it makes the amendments' keys). After commit a task tells each partner.

    Raises `ShipmentNotBooked` when a parcel holding any of the units is no longer booked,
    `UnitsNotInShipment` when the parcels do not hold them; then nothing changes.

    Call it in the transaction that locks the order: every tracking update writes to the
    order's timeline in its own transaction, so none can commit between the status check
    here and the caller's commit (a shipment row lock taken here would deadlock with one)."""
    if not units:
        return UnitsCancelled(amended=(), emptied=())
    shipments = {
        s.center: s
        for s in Shipment.objects.filter(order_id=order_id).exclude(status=ShipmentStatus.CANCELLED)
    }
    wanted: dict[tuple[str, str, str], int] = defaultdict(int)
    for unit in units:
        shipment = shipments.get(unit.center)
        if shipment is None:
            raise UnitsNotInShipment(f"order {order_id} has no parcel from {unit.center}")
        if shipment.status != ShipmentStatus.BOOKED:
            raise ShipmentNotBooked(shipment.awb, shipment.status)
        wanted[(unit.center, unit.sku, unit.batch)] += unit.quantity
    touched: set[int] = set()
    with transaction.atomic():
        for (center, sku, batch), quantity in sorted(wanted.items()):
            shipment = shipments[center]
            items = list(
                ShipmentItem.objects.select_for_update()
                .filter(shipment=shipment, sku=sku, batch=batch)
                .order_by("pk")
            )
            if sum(item.quantity for item in items) < quantity:
                raise UnitsNotInShipment(
                    f"the parcel from {center} holds fewer than {quantity} of {sku} {batch}"
                )
            for item in items:
                take = min(quantity, item.quantity)
                if take == item.quantity:
                    item.delete()
                elif take:
                    ShipmentItem.objects.filter(pk=item.pk).update(quantity=F("quantity") - take)
                quantity -= take
            touched.add(shipment.pk)
        left = set(
            ShipmentItem.objects.filter(shipment_id__in=touched).values_list(
                "shipment_id", flat=True
            )
        )
        for shipment in shipments.values():
            if shipment.pk in touched:
                key = amendment_key(order_id, number, shipment.center)
                Shipment.objects.filter(pk=shipment.pk).update(
                    amendment_owed=key, updated_at=timezone.now()
                )
                transaction.on_commit(lambda pk=shipment.pk, key=key: _enqueue(pk, key))
    return UnitsCancelled(
        amended=tuple(sorted(touched & left)), emptied=tuple(sorted(touched - left))
    )


def _enqueue(shipment_id: int, key: str) -> None:
    # Function-local: the task module imports this one.
    from logistics.tasks import amend_shipment

    try:
        amend_shipment.delay(shipment_id, key)
    except Exception:
        # Committed as owed: the sweeper sends it once the broker is back.
        logger.warning("could not queue amendment %s; the sweeper will", key, exc_info=True)


def shipment_amendments_owed(*, older_than_seconds: int) -> list[tuple[int, str]]:
    """(shipment id, key) of the amendments owed for longer than this: their task was
    lost (or is still retrying; sending again is the same request)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        Shipment.objects.exclude(amendment_owed="")
        .filter(updated_at__lt=cutoff)
        .values_list("pk", "amendment_owed")[:500]
    )


def _content(shipment: Shipment) -> list[dict[str, object]]:
    """What the parcel holds now, per sku (the partner knows no batches)."""
    per_sku: dict[str, int] = defaultdict(int)
    for sku, quantity in shipment.items.values_list("sku", "quantity"):
        per_sku[sku] += quantity
    return [{"sku": sku, "quantity": quantity} for sku, quantity in sorted(per_sku.items())]


def shipment_amendment_send(*, shipment_id: int, key: str) -> str:
    """Tell the shipment's partner what its parcel holds now, once per `key`: an amended
    booking, or a cancelled one when nothing is left in it. Returns AMENDED, CANCELLED,
    GONE or TOO_LATE (logged as an error: cancelled units left with the parcel).

    Idempotent; raises an `ExternalError` when the partner's answer is unknown or it is
    unreachable (ask again later with the same key)."""
    outcome = _amendment_send(Shipment.objects.get(pk=shipment_id), key)
    # Heard (or moot): no longer owed, unless a later change owes a newer one.
    Shipment.objects.filter(pk=shipment_id, amendment_owed=key).update(amendment_owed="")
    return outcome


def _amendment_send(shipment: Shipment, key: str) -> str:
    if shipment.status == ShipmentStatus.CANCELLED:
        return GONE
    if shipment.status != ShipmentStatus.BOOKED or not shipment.awb:
        return _too_late(shipment, key)
    items = _content(shipment)
    if not items:
        shipment_cancel_one(shipment)  # raises while the partner cannot be reached
        return CANCELLED
    try:
        partners.amend(partner=shipment.partner, awb=shipment.awb, items=items, idempotency_key=key)
    except ExternalRejected:
        shipment.refresh_from_db(fields=["status"])
        if shipment.status == ShipmentStatus.CANCELLED:
            return GONE
        return _too_late(shipment, key)
    return AMENDED


def _too_late(shipment: Shipment, key: str) -> str:
    logger.error(
        "amendment %s of shipment %s (%s) came too late: the courier has the parcel with "
        "units that were cancelled and refunded",
        key,
        shipment.awb,
        shipment.status,
        extra={"order_id": str(shipment.order_id)},
    )
    return TOO_LATE
