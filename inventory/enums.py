from django.db import models


class Schedule(models.TextChoices):
    OTC = "otc", "Over the counter"
    H = "h", "Schedule H (prescription)"
    H1 = "h1", "Schedule H1 (prescription, register)"
    X = "x", "Schedule X (never sold online)"


PRESCRIPTION_SCHEDULES = frozenset({Schedule.H, Schedule.H1})


class ReservationStatus(models.TextChoices):
    HELD = "held", "Held"
    COMMITTED = "committed", "Committed"
    RELEASED = "released", "Released"


class StockReturnOutcome(models.TextChoices):
    RESTOCKED = "restocked", "Restocked"
    WRITTEN_OFF = "written_off", "Written off"


class WriteOffReason(models.TextChoices):
    COLD_CHAIN = "cold_chain", "Cold chain (cannot be verified after transit)"
    SHORT_EXPIRY = "short_expiry", "Short expiry (below the shelf-life floor)"
    DAMAGED = "damaged", "Damaged"
    EXPIRED = "expired", "Expired"
    WRONG_ITEM = "wrong_item", "Wrong item"
    OTHER = "other", "Other"
