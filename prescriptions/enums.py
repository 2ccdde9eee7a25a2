from django.db import models


class PrescriptionStatus(models.TextChoices):
    PENDING_REVIEW = "pending_review", "Pending review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class LineDecision(models.TextChoices):
    """A pharmacist's decision on one line of a prescription."""

    PENDING = "", "Not reviewed yet"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class LineRejection(models.TextChoices):
    """Why a pharmacist rejected a line."""

    NOT_ON_PRESCRIPTION = "not_on_prescription", "Not on the prescription"
    ILLEGIBLE = "illegible", "Illegible"
    DOSE_UNCLEAR = "dose_unclear", "Dose unclear"
    INTERACTION = "interaction", "Interaction"
    PATIENT_MISMATCH = "patient_mismatch", "Patient mismatch"
    OTHER = "other", "Other"


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
