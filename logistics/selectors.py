"""Reads of shipments for other apps."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings

from logistics.enums import ShipmentStatus
from logistics.models import Shipment, ShipmentItem


def shipment_statuses(*, order_id: uuid.UUID) -> set[str]:
    """The statuses of the order's shipments (cancelled ones aside)."""
    return set(
        Shipment.objects.filter(order_id=order_id)
        .exclude(status=ShipmentStatus.CANCELLED)
        .values_list("status", flat=True)
    )


@dataclass(frozen=True)
class ShippedUnits:
    shipment_id: int
    center: str
    sku: str
    batch: str
    quantity: int


def shipment_units(*, awb: str) -> list[ShippedUnits]:
    """What the parcel with this AWB holds, batch by batch."""
    return [
        ShippedUnits(shipment_id, center, sku, batch, quantity)
        for shipment_id, center, sku, batch, quantity in ShipmentItem.objects.filter(
            shipment__awb=awb
        )
        .order_by("pk")
        .values_list("shipment_id", "shipment__center", "sku", "batch", "quantity")
    ]


def shipment_tracking_url(shipment: Shipment) -> str | None:
    """The page where the customer follows the parcel at its partner; None until booked.
    `COT_TRACKING_URL_TEMPLATE` is filled with `simulator` (SIMULATOR_URL), `partner` and
    `awb`."""
    if not shipment.awb or not shipment.partner:
        return None
    return settings.COT_TRACKING_URL_TEMPLATE.format(
        simulator=settings.SIMULATOR_URL.rstrip("/"), partner=shipment.partner, awb=shipment.awb
    )
