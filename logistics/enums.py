from django.db import models


class ShipmentStatus(models.TextChoices):
    BOOKED = "booked", "Booked"
    PICKED_UP = "picked_up", "Picked up"
    IN_TRANSIT = "in_transit", "In transit"
    OUT_FOR_DELIVERY = "out_for_delivery", "Out for delivery"
    DELIVERY_FAILED = "delivery_failed", "Delivery failed"
    RETURNING = "returning", "Returning to origin"
    RETURNED = "returned", "Returned to origin"
    DELIVERED = "delivered", "Delivered"
    CANCELLED = "cancelled", "Cancelled"


class DeliveryFailureReason(models.TextChoices):
    CUSTOMER_UNAVAILABLE = "customer_unavailable", "Customer unavailable"
    ADDRESS_NOT_FOUND = "address_not_found", "Address not found"
    REFUSED = "refused", "Refused by the customer"
    OTHER = "other", "Other"


_S = ShipmentStatus
# What the partners may report. `failed` is the older wire name of `delivery_failed`:
# partners that still send it keep working.
TRACKING_STATUSES = (
    _S.PICKED_UP,
    _S.IN_TRANSIT,
    _S.OUT_FOR_DELIVERY,
    _S.DELIVERY_FAILED,
    _S.RETURNING,
    _S.RETURNED,
    _S.DELIVERED,
)
STATUS_ALIASES: dict[str, str] = {"failed": _S.DELIVERY_FAILED}
# Nothing follows these: the parcel reached the customer, or came back to us.
FINAL = frozenset({_S.DELIVERED, _S.RETURNED})
# The statuses that belong to one delivery attempt (numbered from 1).
ATTEMPT_STATUSES = frozenset({_S.OUT_FOR_DELIVERY, _S.DELIVERY_FAILED, _S.DELIVERED})
# How far a shipment has gone, as (stage, attempt, step within the attempt): tracking
# news only ever moves it forward. Attempts repeat out for delivery -> failed as often
# as the courier tries; delivered ends any of them (it ranks above everything, and is
# final; so is returned, see `FINAL`).
STAGE: dict[str, int] = {
    _S.BOOKED: 0,
    _S.PICKED_UP: 1,
    _S.IN_TRANSIT: 2,
    _S.OUT_FOR_DELIVERY: 3,
    _S.DELIVERY_FAILED: 3,
    _S.RETURNING: 4,
    _S.RETURNED: 5,
    _S.DELIVERED: 6,
}
STEP_IN_ATTEMPT: dict[str, int] = {_S.OUT_FOR_DELIVERY: 0, _S.DELIVERY_FAILED: 1}


def progress(status: str, attempt: int) -> tuple[int, int, int]:
    """Where `status` (of delivery attempt `attempt`) stands in a shipment's life;
    comparable: a larger one is further on."""
    if status in STEP_IN_ATTEMPT:
        return STAGE[status], attempt, STEP_IN_ATTEMPT[status]
    return STAGE[status], 0, 0


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
