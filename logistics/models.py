from __future__ import annotations

from django.db import models

from core.models import OutboundAttempt, TimeStampedModel
from logistics.enums import AttemptStatus, DeliveryFailureReason, ShipmentStatus


class Shipment(TimeStampedModel):
    """One parcel from one fulfilment centre to the customer."""

    order_id = models.UUIDField(db_index=True)
    center = models.CharField(max_length=20)
    partner = models.CharField(max_length=20)
    awb = models.CharField(max_length=64, blank=True, db_index=True)
    eta = models.DateField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=ShipmentStatus.choices, default=ShipmentStatus.BOOKED
    )
    idempotency_key = models.CharField(max_length=200, unique=True)
    # When the partner says the status happened (its webhook's `at`).
    status_at = models.DateTimeField(null=True, blank=True)
    # Failed delivery attempts so far (the courier decides when to give up and return it).
    delivery_attempts = models.PositiveIntegerField(default=0)
    last_failure_reason = models.CharField(
        max_length=30, choices=DeliveryFailureReason.choices, blank=True
    )
    # The key of an amendment the partner has yet to hear (lines were cancelled out of the
    # parcel): written with the change, cleared once the partner heard; the sweeper sends
    # again what a lost task never did.
    amendment_owed = models.CharField(max_length=200, blank=True)
    # Proof of delivery for prescription (schedule H/H1) parcels: the customer gives this
    # code to the courier, who hands the parcel over only against it. Blank when the
    # parcel needs none.
    delivery_otp = models.CharField(max_length=6, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order_id", "center"], name="shipment_unique_center")
        ]
        # Ops move a shipment by hand when the courier's word is missing or wrong.
        permissions = [("move_shipment", "Can move a shipment by hand, as the courier would")]

    def __str__(self) -> str:
        return f"{self.partner} {self.awb or '(unbooked)'} for {self.order_id}"


class ShipmentItem(models.Model):
    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="items")
    sku = models.CharField(max_length=64)
    batch = models.CharField(max_length=64, help_text="Recall traceability.")
    quantity = models.PositiveIntegerField()


class ShipmentAttempt(OutboundAttempt):
    """One booking request (`core.attempts`): one key at one partner, written before the
    call, so a retry reuses it."""

    shipment = models.ForeignKey(Shipment, on_delete=models.PROTECT, related_name="attempts")
    partner = models.CharField(max_length=20)
    status = models.CharField(
        max_length=12, choices=AttemptStatus.choices, default=AttemptStatus.STARTED
    )
    # What was sent: compensation asks again with the same body and key to learn whether
    # a booking whose answer was lost exists.
    request = models.JSONField(default=dict, blank=True)


class ShipmentUpdate(models.Model):
    """One tracking update from the partner that moved the shipment (replays and stale
    news are not kept): the shipment's history as the customer sees it."""

    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="updates")
    status = models.CharField(max_length=20, choices=ShipmentStatus.choices)
    # When the partner says it happened.
    at = models.DateTimeField()
    attempt = models.PositiveIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=30, choices=DeliveryFailureReason.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.shipment_id} {self.status} at {self.at:%Y-%m-%d %H:%M}"
