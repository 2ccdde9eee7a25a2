from __future__ import annotations

from django.db import models

from core.models import OutboundAttempt, TimeStampedModel
from payments.enums import AttemptStatus, PaymentMethod, PaymentStatus


class Payment(TimeStampedModel):
    order_id = models.UUIDField(unique=True)
    method = models.CharField(max_length=12, choices=PaymentMethod.choices)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="INR")
    status = models.CharField(
        max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.PENDING
    )
    gateway = models.CharField(max_length=20, blank=True)
    intent_id = models.CharField(max_length=100, blank=True)
    reference = models.CharField(max_length=100, blank=True, db_index=True)
    decline_code = models.CharField(max_length=50, blank=True)
    refund_reference = models.CharField(max_length=100, blank=True)

    class Meta:
        permissions = [("refund_payment", "Can refund a captured payment")]

    def __str__(self) -> str:
        return f"payment for {self.order_id} ({self.status})"


class PaymentAttempt(OutboundAttempt):
    """One call to a gateway (`core.attempts`). The key is written before the call, so a
    retry reuses it."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="attempts")
    kind = models.CharField(max_length=10, default="charge")  # charge | refund
    gateway = models.CharField(max_length=20)
    status = models.CharField(
        max_length=12, choices=AttemptStatus.choices, default=AttemptStatus.STARTED
    )
