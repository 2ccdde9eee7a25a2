from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import F, Q

from core.models import TimeStampedModel
from inventory.enums import (
    PRESCRIPTION_SCHEDULES,
    ReservationStatus,
    Schedule,
    StockReturnOutcome,
    WriteOffReason,
)


class Product(TimeStampedModel):
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    schedule = models.CharField(max_length=4, choices=Schedule.choices, default=Schedule.OTC)
    # What is in it, e.g. "amoxicillin 500 mg capsule": products of one composition may
    # stand in for each other (a pharmacist's substitution, with the customer's consent).
    composition = models.CharField(max_length=200, blank=True, db_index=True)
    manufacturer = models.CharField(max_length=100, blank=True)
    active = models.BooleanField(default=True)
    cold_chain = models.BooleanField(
        default=False,
        help_text="Kept at 2-8 °C: a unit that comes back is written off, never restocked.",
    )

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_gte_0")
        ]

    def __str__(self) -> str:
        return f"{self.sku} – {self.name}"

    @property
    def requires_prescription(self) -> bool:
        return self.schedule in PRESCRIPTION_SCHEDULES


class FulfillmentCenter(TimeStampedModel):
    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=100)
    priority = models.PositiveIntegerField(help_text="1 is tried first.")
    pincode_prefixes = models.JSONField(default=list)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["priority", "code"]

    def __str__(self) -> str:
        return f"{self.code} – {self.name}"

    def serves(self, pincode: str) -> bool:
        return any(pincode.startswith(prefix) for prefix in self.pincode_prefixes)


class StockBatch(TimeStampedModel):
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="batches")
    center = models.ForeignKey(FulfillmentCenter, on_delete=models.PROTECT, related_name="batches")
    batch = models.CharField(max_length=64)
    expires_on = models.DateField()
    on_hand = models.PositiveIntegerField(default=0)
    reserved = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "stock batches"
        constraints = [
            models.UniqueConstraint(
                fields=["product", "center", "batch"], name="stockbatch_unique_batch"
            ),
            # The last line of defence against an oversell; the row lock is how it never fires.
            models.CheckConstraint(condition=Q(reserved__gte=0), name="stockbatch_reserved_gte_0"),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")), name="stockbatch_reserved_lte_on_hand"
            ),
        ]
        indexes = [models.Index(fields=["product", "center", "expires_on"])]

    def __str__(self) -> str:
        return f"{self.product_id}@{self.center_id} {self.batch}"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class Reservation(TimeStampedModel):
    """Stock held for one order; the items say which batch gives how much."""

    order_id = models.UUIDField(unique=True)
    status = models.CharField(
        max_length=12, choices=ReservationStatus.choices, default=ReservationStatus.HELD
    )

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"reservation for {self.order_id} ({self.status})"


class ReservationItem(models.Model):
    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="items")
    batch = models.ForeignKey(StockBatch, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="reservationitem_qty_gt_0")
        ]


class StockLevel(models.Model):
    """Stock per product and centre, summed over its batches: a read-only database view
    (migration 0002), so the inventory team's admin list pages, sorts and filters in SQL."""

    product = models.ForeignKey(
        Product, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    center = models.ForeignKey(
        FulfillmentCenter, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    on_hand = models.IntegerField()
    reserved = models.IntegerField()
    available = models.IntegerField()
    nearest_expiry = models.DateField(null=True, help_text="Earliest expiry of a batch on hand.")
    batches = models.IntegerField()

    class Meta:
        managed = False
        db_table = "inventory_stocklevel"
        verbose_name = "stock per product and centre"
        verbose_name_plural = "stock per product and centre"

    def __str__(self) -> str:
        return f"{self.product_id}@{self.center_id}"


class StockRecordError(Exception):
    """Stock returns are evidence of where units went: never deleted."""


class NeverDeletedQuerySet(models.QuerySet):
    def delete(self) -> tuple[int, dict[str, int]]:
        raise StockRecordError(f"{self.model.__name__} rows are never deleted")


class NeverDeleted(models.Model):
    objects = NeverDeletedQuerySet.as_manager()

    class Meta:
        abstract = True

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise StockRecordError(f"{type(self).__name__} rows are never deleted")


class StockReturn(NeverDeleted):
    """Units of one batch that came back (returned to origin, or by the customer) and were
    either put back on the shelf or written off. One row per cause and batch: `reference`
    names the cause (`rto:<shipment id>`, `return:<return id>`), so taking back twice is
    recording once."""

    batch = models.ForeignKey(StockBatch, on_delete=models.PROTECT, related_name="returns")
    quantity = models.PositiveIntegerField()
    outcome = models.CharField(max_length=12, choices=StockReturnOutcome.choices)
    reason = models.CharField(
        max_length=16,
        choices=WriteOffReason.choices,
        blank=True,
        help_text="Why the units were written off; blank when restocked.",
    )
    order_id = models.UUIDField(db_index=True)
    reference = models.CharField(max_length=100)
    note = models.TextField(blank=True)
    by = models.CharField(
        max_length=150, blank=True, help_text="Staff username; blank when taken back automatically."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["reference", "batch"], name="stockreturn_unique_reference_batch"
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="stockreturn_qty_gt_0"),
            # A write-off always says why; a restock never does.
            models.CheckConstraint(
                condition=(
                    Q(outcome=StockReturnOutcome.RESTOCKED, reason="")
                    | (Q(outcome=StockReturnOutcome.WRITTEN_OFF) & ~Q(reason=""))
                ),
                name="stockreturn_reason_iff_written_off",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.batch} {self.outcome} ({self.reference})"


class WrittenOffManager(models.Manager.from_queryset(NeverDeletedQuerySet)):  # type: ignore[misc]
    def get_queryset(self) -> NeverDeletedQuerySet:
        return super().get_queryset().filter(outcome=StockReturnOutcome.WRITTEN_OFF)


class StockWriteOff(StockReturn):
    """The written-off returns alone: the inventory and ops teams' write-off list."""

    objects = WrittenOffManager()

    class Meta:
        proxy = True
        verbose_name = "stock write-off"
        verbose_name_plural = "stock write-offs"
