from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.enums import Channel
from core.models import ApiClient, TimeStampedModel
from orders.enums import (
    EventType,
    FailureReason,
    Fulfilment,
    LineStatus,
    OnPartial,
    OrderStatus,
    Step,
    SubstitutionStatus,
)
from payments.enums import PaymentMethod


class OrderNumber(models.Model):
    """A counter for human order numbers (`COT-00001234`) on every database backend."""

    id = models.BigAutoField(primary_key=True)


class Order(TimeStampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=20, unique=True)
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="orders")
    channel = models.CharField(max_length=20, choices=Channel.choices)
    customer_id = models.CharField(max_length=64)
    # null for an in-store pickup order, which has `contact` instead.
    delivery_address = models.JSONField(null=True, blank=True)
    prescription_id = models.UUIDField(null=True, blank=True)
    payment_method = models.CharField(max_length=12, choices=PaymentMethod.choices)
    # A gateway token (never card data); needed to charge after the asynchronous checks.
    payment_token = models.CharField(max_length=200, blank=True)
    # What is charged: the active lines' total (dropped lines leave it).
    total_amount = models.DecimalField(max_digits=12, decimal_places=2)
    on_partial = models.CharField(
        max_length=16, choices=OnPartial.choices, default=OnPartial.REJECT
    )
    currency = models.CharField(max_length=3, default="INR")
    status = models.CharField(
        max_length=20, choices=OrderStatus.choices, default=OrderStatus.RECEIVED
    )
    # null, not "": the API promises `"failure_reason": null` until an order fails.
    failure_reason = models.CharField(  # noqa: DJ001
        max_length=40, choices=FailureReason.choices, null=True, blank=True
    )
    # null when absent, so the unique (client, key) constraint ignores keyless orders.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_fingerprint = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # A step ran COT_STEP_MAX_ATTEMPTS times without finishing: the pipeline and the
    # sweeper leave the order alone until a person looks (admin action clears it).
    needs_attention = models.BooleanField(default=False)
    # Payment retry: set at the first decline of an order whose client has a retry window;
    # the order may be paid another way until then (however often it is declined before).
    payment_retry_until = models.DateTimeField(null=True, blank=True)
    # In-store pickup: stock only from `pickup_center` (a centre's code), no courier; the
    # customer is reached through `contact` ({name, phone, email?}), when given.
    fulfilment = models.CharField(
        max_length=10, choices=Fulfilment.choices, default=Fulfilment.DELIVERY
    )
    pickup_center = models.CharField(max_length=20, blank=True)
    contact = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="order_unique_idempotency_key",
            )
        ]
        indexes = [
            models.Index(fields=["client", "-created_at"]),
            models.Index(fields=["status", "updated_at"]),
            models.Index(fields=["customer_id"]),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_pickup(self) -> bool:
        return self.fulfilment == Fulfilment.PICKUP

    @property
    def delivery_pincode(self) -> str:
        """Where stock for a delivery order may come from; "" for a pickup order."""
        return str((self.delivery_address or {}).get("pincode", ""))

    @property
    def recipient(self) -> dict[str, Any]:
        """Who the customer's messages go to: the delivery address, or a pickup order's
        contact (empty when it gave none)."""
        return self.delivery_address or self.contact or {}


class Pickup(TimeStampedModel):
    """The counter side of an in-store pickup order, made when the order is ready: the
    code the customer shows, the wrong codes tried, and who handed it over. Not collected
    within COT_PICKUP_HOLD_DAYS of `ready_at`, the order is cancelled."""

    order = models.OneToOneField(
        Order, on_delete=models.CASCADE, primary_key=True, related_name="pickup"
    )
    # Six digits, shown to the order's client and sent to the customer; never in the
    # timeline or the outbound webhooks.
    code = models.CharField(max_length=6)
    ready_at = models.DateTimeField(db_index=True)
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    # Set at the fifth wrong code: no code is accepted until ops unlock it in admin.
    locked_at = models.DateTimeField(null=True, blank=True)
    collected_at = models.DateTimeField(null=True, blank=True)
    collected_by = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return f"pickup of {self.order_id}"

    @property
    def collect_by(self) -> datetime.datetime:
        """Not collected by then, the order is cancelled (`pickup_not_collected`)."""
        return self.ready_at + datetime.timedelta(days=settings.COT_PICKUP_HOLD_DAYS)


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    schedule = models.CharField(max_length=4)
    # What is still ordered: units cancelled before pickup move to `cancelled_quantity`
    # (and out of `line_total`).
    quantity = models.PositiveIntegerField()
    cancelled_quantity = models.PositiveIntegerField(default=0)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    line_total = models.DecimalField(max_digits=12, decimal_places=2)
    requires_prescription = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=LineStatus.choices, default=LineStatus.ACTIVE)
    # Dropped lines only: the prescription rule the line failed (a CheckResult).
    drop_reason = models.CharField(max_length=40, blank=True)
    # The sku ordered, when the client accepted a substitute for it (then `sku` is the
    # substitute's). Its prescription item is the one claimed for this line.
    substituted_for = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["pk"]


class Substitution(TimeStampedModel):
    """A substitute of the same composition a pharmacist offered for one line of an
    on-hold order, and the client's answer. The order waits for it (its own timeout,
    COT_SUBSTITUTION_TIMEOUT_SECONDS, counted from `created_at`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="substitutions")
    line = models.ForeignKey(OrderLine, on_delete=models.CASCADE, related_name="substitutions")
    sku = models.CharField(max_length=64)
    substitute_sku = models.CharField(max_length=64)
    substitute_name = models.CharField(max_length=200)
    substitute_unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    # What the line would cost more (negative: less) with the substitute.
    price_difference = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(
        max_length=10, choices=SubstitutionStatus.choices, default=SubstitutionStatus.PROPOSED
    )
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            # One open offer per line: the client answers one question at a time.
            models.UniqueConstraint(
                fields=["line"],
                condition=Q(status="proposed"),
                name="substitution_one_open_per_line",
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"])]


class TimelineDeletion(Exception):
    """An order's timeline is its record: events are appended, never deleted."""


class OrderEventQuerySet(models.QuerySet):
    def delete(self) -> tuple[int, dict[str, int]]:
        raise TimelineDeletion("order events are never deleted")


class OrderEvent(models.Model):
    """The order's timeline, and its outbox: subscribers get each event after commit.
    Never deleted: not one by one, not in bulk, not with its order (PROTECT)."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events")
    type = models.CharField(max_length=40, choices=EventType.choices)
    data = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    objects = OrderEventQuerySet.as_manager()

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["order", "id"])]

    def __str__(self) -> str:
        return f"{self.type} at {self.at:%Y-%m-%d %H:%M:%S}"

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TimelineDeletion("order events are never deleted")


class OrderStep(TimeStampedModel):
    """A pipeline step's outcome (once per order) and how often it was attempted."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="steps")
    step = models.CharField(max_length=20, choices=Step.choices)
    ok = models.BooleanField(null=True)
    result = models.CharField(max_length=40, blank=True)
    data = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "step"], name="orderstep_unique_step")
        ]


class ReturnStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    APPROVED = "approved", "Approved (pickup booked)"
    REJECTED = "rejected", "Rejected"
    RECEIVED = "received", "Received (inspected, refund asked)"
    REFUNDED = "refunded", "Refunded"


class ReturnReason(models.TextChoices):
    DAMAGED = "damaged", "Damaged"
    WRONG_ITEM = "wrong_item", "Wrong item"
    EXPIRED = "expired", "Expired"
    NOT_NEEDED = "not_needed", "Not needed"
    OTHER = "other", "Other"


class Return(TimeStampedModel):
    """A customer's request to send back delivered units of an order, and what became of
    it: approved (a reverse pickup booked) or rejected by ops, received and inspected
    (units restocked or written off, the refund asked for), refunded."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="returns")
    status = models.CharField(
        max_length=12, choices=ReturnStatus.choices, default=ReturnStatus.REQUESTED
    )
    reason = models.CharField(max_length=12, choices=ReturnReason.choices)
    note = models.CharField(max_length=500, blank=True)
    refund_amount = models.DecimalField(max_digits=12, decimal_places=2)
    # Cash on delivery: the customer's UPI id, where the refund is paid out.
    refund_vpa = models.CharField(max_length=100, blank=True)
    pickup_partner = models.CharField(max_length=20, blank=True)
    pickup_awb = models.CharField(max_length=64, blank=True, db_index=True)
    pickup_date = models.DateField(null=True, blank=True)
    # Who approved, rejected or received it last, and what they said (also on the timeline).
    decided_by = models.CharField(max_length=150, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)
    # null when absent, so the unique (order, key) constraint ignores keyless requests.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_fingerprint = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="return_unique_idempotency_key",
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"return {str(self.pk)[:8]} of {self.order_id}"


class ReturnLine(models.Model):
    """Units of one sku in a return. `batches` says where they came from, decided when
    the return was requested: `[{"shipment_item", "center", "batch", "partner",
    "quantity"}]`, in shipment item order; once received each entry also has the
    stock's `outcome` and `reason`."""

    return_request = models.ForeignKey(Return, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    # Blank until received: restocked, written_off, or partly_restocked (its units came
    # from several batches and only some could go back on the shelf).
    outcome = models.CharField(max_length=20, blank=True)
    write_off_reason = models.CharField(max_length=16, blank=True)
    batches = models.JSONField(default=list)

    class Meta:
        ordering = ["pk"]
