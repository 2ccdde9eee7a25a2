"""Reads of shipments for other apps."""

from __future__ import annotations

import uuid

from django.conf import settings

from logistics.enums import ShipmentStatus
from logistics.models import Shipment


def shipment_all_delivered(*, order_id: uuid.UUID) -> bool:
    """Every (not cancelled) shipment of the order is delivered, and there is one."""
    statuses = set(
        Shipment.objects.filter(order_id=order_id)
        .exclude(status=ShipmentStatus.CANCELLED)
        .values_list("status", flat=True)
    )
    return statuses == {ShipmentStatus.DELIVERED}


def shipment_tracking_url(shipment: Shipment) -> str | None:
    """The page where the customer follows the parcel at its partner; None until booked.
    `COT_TRACKING_URL_TEMPLATE` is filled with `simulator` (SIMULATOR_URL), `partner` and
    `awb`."""
    if not shipment.awb or not shipment.partner:
        return None
    return settings.COT_TRACKING_URL_TEMPLATE.format(
        simulator=settings.SIMULATOR_URL.rstrip("/"), partner=shipment.partner, awb=shipment.awb
    )
