"""Shipment booking with partner failover, and cancellation. Idempotent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from core.http import ExternalRejected, ExternalUnavailable
from logistics import partners
from logistics.enums import ShipmentStatus
from logistics.models import Shipment, ShipmentItem

FULFILMENT_UNAVAILABLE = "fulfilment_unavailable"


@dataclass(frozen=True)
class ParcelItem:
    sku: str
    batch: str
    quantity: int


@dataclass(frozen=True)
class BookOutcome:
    ok: bool
    reason: str | None = None
    shipments: tuple[Shipment, ...] = ()


def _shipment_for(order_id: uuid.UUID, center: str, items: list[ParcelItem]) -> Shipment:
    try:
        with transaction.atomic():
            shipment = Shipment.objects.create(
                order_id=order_id,
                center=center,
                partner="",
                idempotency_key=f"order:{order_id}:shipment:{center}",
            )
            ShipmentItem.objects.bulk_create(
                ShipmentItem(shipment=shipment, sku=i.sku, batch=i.batch, quantity=i.quantity)
                for i in items
            )
            return shipment
    except IntegrityError:
        return Shipment.objects.get(order_id=order_id, center=center)


def shipment_book(
    *, order_id: uuid.UUID, reference: str, pincode: str, parcels: dict[str, list[ParcelItem]]
) -> BookOutcome:
    """Book one shipment per centre with the first partner that takes it.

    Returns a failed outcome when no partner can serve the pincode; raises
    ExternalUnavailable when partners are down (the caller retries later)."""
    booked: list[Shipment] = []
    for center, items in sorted(parcels.items()):
        shipment = _shipment_for(order_id, center, items)
        if not shipment.awb:
            outcome = _book_one(shipment, reference, pincode, items)
            if outcome is not None:
                return outcome
        booked.append(shipment)
    return BookOutcome(ok=True, shipments=tuple(booked))


def _book_one(
    shipment: Shipment, reference: str, pincode: str, items: list[ParcelItem]
) -> BookOutcome | None:
    unavailable: ExternalUnavailable | None = None
    refused = 0
    for partner in settings.COT_LOGISTICS_PARTNERS:
        try:
            booking = partners.book(
                partner=partner,
                reference=reference,
                pincode=pincode,
                items=[{"sku": i.sku, "batch": i.batch, "quantity": i.quantity} for i in items],
                # The key names the partner: a booking at one partner says nothing of another.
                idempotency_key=f"{shipment.idempotency_key}:{partner}",
            )
        except ExternalUnavailable as exc:
            unavailable = exc
            continue
        except ExternalRejected:
            refused += 1  # not serviceable by this partner
            continue
        shipment.partner, shipment.awb, shipment.eta = partner, booking.awb, booking.eta
        shipment.save(update_fields=["partner", "awb", "eta", "updated_at"])
        return None
    if unavailable is not None:
        raise unavailable
    return BookOutcome(ok=False, reason=FULFILMENT_UNAVAILABLE)


def shipment_cancel(*, order_id: uuid.UUID) -> int:
    """Cancel every booked shipment of the order at its partner. Returns how many changed."""
    changed = 0
    for shipment in Shipment.objects.filter(order_id=order_id, status=ShipmentStatus.BOOKED):
        if shipment.awb:
            partners.cancel(partner=shipment.partner, awb=shipment.awb)
        changed += Shipment.objects.filter(pk=shipment.pk, status=ShipmentStatus.BOOKED).update(
            status=ShipmentStatus.CANCELLED
        )
    return changed
