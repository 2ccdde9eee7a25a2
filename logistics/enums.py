from django.db import models


class ShipmentStatus(models.TextChoices):
    BOOKED = "booked", "Booked"
    PICKED_UP = "picked_up", "Picked up"
    IN_TRANSIT = "in_transit", "In transit"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Delivery failed"
    CANCELLED = "cancelled", "Cancelled"


# How far a shipment has gone: tracking news only ever moves it forward. A failed delivery
# may still be followed by a delivery (the courier tries again); nothing follows delivered.
STATUS_RANK: dict[str, int] = {
    ShipmentStatus.BOOKED: 0,
    ShipmentStatus.PICKED_UP: 1,
    ShipmentStatus.IN_TRANSIT: 2,
    ShipmentStatus.FAILED: 3,
    ShipmentStatus.DELIVERED: 4,
}
TRACKING_STATUSES = (
    ShipmentStatus.PICKED_UP,
    ShipmentStatus.IN_TRANSIT,
    ShipmentStatus.DELIVERED,
    ShipmentStatus.FAILED,
)


class AttemptStatus(models.TextChoices):
    """One booking request (one key at one partner); started, unavailable, error and
    abandoned mean what `core.attempts` says."""

    STARTED = "started", "Started"
    BOOKED = "booked", "Booked"
    REFUSED = "refused", "Refused (not serviceable)"
    UNAVAILABLE = "unavailable", "Partner unavailable"
    ERROR = "error", "Error (outcome unknown)"
    ABANDONED = "abandoned", "Abandoned before sending"


# Surely booked nothing: the next attempt may go to another partner.
NOT_BOOKED = frozenset({AttemptStatus.REFUSED, AttemptStatus.UNAVAILABLE, AttemptStatus.ABANDONED})
