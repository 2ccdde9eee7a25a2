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
