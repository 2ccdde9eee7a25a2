"""Reads of shipments for other apps."""

from __future__ import annotations

import uuid

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
