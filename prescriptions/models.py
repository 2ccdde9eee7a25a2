from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Q

from core.models import ApiClient, TimeStampedModel
from prescriptions.enums import PrescriptionStatus


class Prescription(TimeStampedModel):
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

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"Rx {self.id} for {self.patient_name} ({self.status})"


class PrescriptionItem(models.Model):
    prescription = models.ForeignKey(Prescription, on_delete=models.PROTECT, related_name="items")
    sku = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField()
    dispensed_quantity = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["prescription", "sku"], name="rxitem_unique_sku"),
            models.CheckConstraint(
                condition=Q(dispensed_quantity__lte=F("quantity")), name="rxitem_dispensed_lte_qty"
            ),
        ]

    @property
    def remaining(self) -> int:
        return self.quantity - self.dispensed_quantity
