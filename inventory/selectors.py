"""Reads of stock: what other apps and the API ask of inventory."""

from __future__ import annotations

import datetime
import uuid

from inventory.enums import ReservationStatus
from inventory.models import Reservation


def reservation_held_order_ids(*, created_before: datetime.datetime, limit: int) -> list[uuid.UUID]:
    """Orders whose reservation is still held and was made before `created_before`,
    oldest first (the reservation-expiry job's worklist)."""
    return list(
        Reservation.objects.filter(status=ReservationStatus.HELD, created_at__lt=created_before)
        .order_by("created_at", "pk")
        .values_list("order_id", flat=True)[:limit]
    )
