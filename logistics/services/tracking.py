"""Partner tracking news (the logistics webhook), applied to our shipments once, whatever
order and however often it arrives: a shipment only ever moves forward (`STATUS_RANK`)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from logistics.enums import STATUS_RANK, ShipmentStatus
from logistics.models import Shipment
from logistics.signals import shipment_changed

APPLIED = "applied"
ALREADY_APPLIED = "already_applied"  # a replay: the shipment is in that status already
STALE = "stale"  # older than what we know (out of order): nothing moves backwards
IGNORED = "ignored"  # the shipment was cancelled: the partner's news no longer matters
UNKNOWN_REFERENCE = "unknown_reference"


def shipment_tracking_apply(*, awb: str, status: str, at: datetime) -> str:
    """Apply one tracking update; returns one of APPLIED, ALREADY_APPLIED, STALE, IGNORED,
    UNKNOWN_REFERENCE. A change goes out through `shipment_changed` in the same
    transaction."""
    with transaction.atomic():
        shipment = (
            Shipment.objects.select_for_update().filter(awb=awb).order_by("-created_at").first()
        )
        if shipment is None:
            return UNKNOWN_REFERENCE
        if shipment.status == ShipmentStatus.CANCELLED:
            return IGNORED
        if shipment.status == status:
            return ALREADY_APPLIED
        if STATUS_RANK[status] < STATUS_RANK[shipment.status]:
            return STALE
        Shipment.objects.filter(pk=shipment.pk).update(
            status=status, status_at=at, updated_at=timezone.now()
        )
        shipment_changed.send(
            sender=Shipment,
            order_id=shipment.order_id,
            status=status,
            data={
                "awb": shipment.awb,
                "center": shipment.center,
                "partner": shipment.partner,
                "at": at.isoformat().replace("+00:00", "Z"),
            },
        )
    return APPLIED
