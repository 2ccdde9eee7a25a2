from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.db.models import F, Q

from core.models import ApiClient, TimeStampedModel
from prescriptions.enums import H1EntryType, LineDecision, LineRejection, PrescriptionStatus


class RegulatoryRecordError(Exception):
    """Prescriptions, their review history and the H1 register are never deleted."""


class NeverDeletedQuerySet(models.QuerySet):
    def delete(self) -> tuple[int, dict[str, int]]:
        raise RegulatoryRecordError(f"{self.model.__name__} rows are regulatory records")


class NeverDeleted(models.Model):
    objects = NeverDeletedQuerySet.as_manager()

    class Meta:
        abstract = True

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise RegulatoryRecordError(f"{type(self).__name__} rows are regulatory records")


class Prescription(NeverDeleted, TimeStampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="+")
    customer_id = models.CharField(max_length=64, db_index=True)
    patient_name = models.CharField(max_length=200)
    doctor_name = models.CharField(max_length=200)
    doctor_registration_no = models.CharField(max_length=64)
    issued_on = models.DateField()
    image = models.FileField(upload_to="prescriptions/%Y/%m/", blank=True)
    status = models.CharField(
        max_length=20, choices=PrescriptionStatus.choices, default=PrescriptionStatus.PENDING_REVIEW
    )
    reviewed_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    # How many orders may draw on it (null: as many as its quantities cover).
    max_dispenses = models.PositiveIntegerField(null=True, blank=True)
    # The pharmacist reviewing it now (the review queue), so that two never review one.
    claimed_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"])]
        permissions = [("review_prescription", "Can approve or reject prescriptions")]

    def __str__(self) -> str:
        return f"Rx {str(self.id)[:8]} for {self.patient_name} ({self.status})"


class PrescriptionItem(NeverDeleted):
    prescription = models.ForeignKey(Prescription, on_delete=models.PROTECT, related_name="items")
    sku = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField()
    dispensed_quantity = models.PositiveIntegerField(default=0)
    # The pharmacist's word on this line: a rejected line is as if the prescription did not
    # name it.
    decision = models.CharField(
        max_length=10, choices=LineDecision.choices, default=LineDecision.PENDING, blank=True
    )
    rejection_reason = models.CharField(max_length=30, choices=LineRejection.choices, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["prescription", "sku"], name="rxitem_unique_sku"),
            # The last line of defence against dispensing more than was prescribed.
            models.CheckConstraint(
                condition=Q(dispensed_quantity__lte=F("quantity")), name="rxitem_dispensed_lte_qty"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} ×{self.quantity} ({self.dispensed_quantity} dispensed)"

    @property
    def remaining(self) -> int:
        return self.quantity - self.dispensed_quantity


class Dispensation(NeverDeleted, TimeStampedModel):
    """Quantity of one prescription item claimed by one order. Units that come back are
    given back to the prescription: `quantity` stays what was claimed, `returned_quantity`
    grows, and `returned` turns true once nothing is claimed any more."""

    order_id = models.UUIDField(db_index=True)
    item = models.ForeignKey(
        PrescriptionItem, on_delete=models.PROTECT, related_name="dispensations"
    )
    quantity = models.PositiveIntegerField()
    returned_quantity = models.PositiveIntegerField(default=0)
    returned = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order_id", "item"], name="dispensation_unique_item"),
            models.CheckConstraint(
                condition=Q(returned_quantity__lte=F("quantity")),
                name="dispensation_returned_lte_qty",
            ),
        ]

    @property
    def claimed(self) -> int:
        """Units of the prescription this order still holds."""
        return self.quantity - self.returned_quantity


class DispensationGiveBack(NeverDeleted, TimeStampedModel):
    """Units of one dispensation given back for one return event (`rto:<shipment id>`, a
    customer return...); its uniqueness is what makes replaying that event a no-op."""

    reference = models.CharField(max_length=100)
    dispensation = models.ForeignKey(
        Dispensation, on_delete=models.PROTECT, related_name="give_backs"
    )
    quantity = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["reference", "dispensation"], name="giveback_unique_reference"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reference}: {self.quantity} back to dispensation {self.dispensation_id}"


class H1RegisterEntry(NeverDeleted):
    """Schedule H1 register: one row per confirmed H1 line and batch (Drugs and Cosmetics
    Rules, rule 65(3)(b)); written when the order is confirmed, never changed. Units that
    come back are recorded as a `returned` row beside it, one per return event."""

    recorded_at = models.DateTimeField(auto_now_add=True, db_index=True)
    order_id = models.UUIDField(db_index=True)
    order_number = models.CharField(max_length=20)
    prescription = models.ForeignKey(Prescription, on_delete=models.PROTECT, related_name="+")
    patient_name = models.CharField(max_length=200)
    doctor_name = models.CharField(max_length=200)
    doctor_registration_no = models.CharField(max_length=64)
    sku = models.CharField(max_length=64)
    drug_name = models.CharField(max_length=200)
    batch = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField()
    entry_type = models.CharField(
        max_length=16, choices=H1EntryType.choices, default=H1EntryType.DISPENSED
    )
    # The return event a `returned` row records; blank on `dispensed` rows.
    reference = models.CharField(max_length=100, blank=True)

    class Meta:
        verbose_name = "Schedule H1 register entry"
        verbose_name_plural = "Schedule H1 register"
        ordering = ["-recorded_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["order_id", "sku", "batch", "entry_type", "reference"],
                name="h1_register_unique_line_batch_entry",
            )
        ]

    def __str__(self) -> str:
        label = f"{self.order_number} {self.sku} {self.batch} ×{self.quantity}"
        if self.entry_type == H1EntryType.RETURNED:
            return f"{label} returned ({self.reference})"
        return label
