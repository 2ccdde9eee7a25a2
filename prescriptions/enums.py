from django.db import models


class PrescriptionStatus(models.TextChoices):
    PENDING_REVIEW = "pending_review", "Pending review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class CheckResult(models.TextChoices):
    """What the pipeline's prescription check concluded for one order."""

    OK = "ok", "OK"
    ON_HOLD = "on_hold", "Waiting for review"
    PRESCRIPTION_REQUIRED = "prescription_required", "Prescription required"
    PRESCRIPTION_INVALID = "prescription_invalid", "Prescription invalid"
    PRESCRIPTION_EXPIRED = "prescription_expired", "Prescription expired"
    PRESCRIPTION_REJECTED = "prescription_rejected", "Prescription rejected"
    PRESCRIPTION_QUANTITY_EXCEEDED = "prescription_quantity_exceeded", "Quantity exceeded"
    NOT_SELLABLE_ONLINE = "not_sellable_online", "Not sellable online"


class H1EntryType(models.TextChoices):
    DISPENSED = "dispensed", "Dispensed"
    RETURNED = "returned", "Returned"
