from django.db import models


class DemandPattern(models.TextChoices):
    """A series' demand pattern by the Syntetos-Boylan classification (ADI, CV²), which
    decides the model that forecasts it (docs/FORECASTING.md)."""

    SMOOTH = "smooth", "Smooth (regular, steady sizes)"
    ERRATIC = "erratic", "Erratic (regular, varying sizes)"
    INTERMITTENT = "intermittent", "Intermittent (slow mover, steady sizes)"
    LUMPY = "lumpy", "Lumpy (slow mover, varying sizes)"
    SHORT = "short", "Short history (under 60 days)"
    NONE = "none", "No demand"


REGULAR_PATTERNS = frozenset({DemandPattern.SMOOTH, DemandPattern.ERRATIC})
INTERMITTENT_PATTERNS = frozenset({DemandPattern.INTERMITTENT, DemandPattern.LUMPY})


class ReplenishmentStatus(models.TextChoices):
    # Sellable stock runs out before a delivery ordered today could arrive.
    STOCKOUT_RISK = "stockout_risk", "Stock-out risk (cover below lead time)"
    # Below the order-up-to level: order the suggested quantity at this review.
    REORDER = "reorder", "Reorder"
    OK = "ok", "Covered"
    # Nothing sold in the history window: no forecast, no suggestion.
    NO_DEMAND = "no_demand", "No demand"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
