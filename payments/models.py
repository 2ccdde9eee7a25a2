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
    # The sum of the refunds the gateway has made; never above `amount` (what was captured).
    refunded_amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)

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
    # Refunds only: how much, why, and what asked for it. `cause` names the thing being
    # refunded (`rto:<shipment>`, `return:<id>`, `ops:<uuid>`...), once per payment, so a
    # redelivered request finds its refund instead of making a second one.
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    cause = models.CharField(max_length=100, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    # Cash on delivery is refunded as a payout to the customer's UPI id.
    vpa = models.CharField(max_length=100, blank=True)

    class Meta(OutboundAttempt.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["payment", "cause"],
                condition=models.Q(kind="refund") & ~models.Q(cause=""),
                name="paymentattempt_unique_refund_cause",
            ),
            models.CheckConstraint(
                condition=models.Q(amount__isnull=True) | models.Q(amount__gt=0),
                name="paymentattempt_amount_gt_0",
            ),
        ]
