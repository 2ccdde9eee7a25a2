from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel
from forecasting.enums import DemandPattern, ReplenishmentStatus, RunStatus
from inventory.models import FulfillmentCenter, Product


class CenterReplenishmentSettings(TimeStampedModel):
    """How long a delivery to a centre takes and how often its stock is reviewed; left
    blank, COT_REPLENISHMENT_LEAD_TIME_DAYS and COT_REPLENISHMENT_REVIEW_DAYS apply."""

    center = models.OneToOneField(
        FulfillmentCenter, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    lead_time_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(180)],
        help_text="Days from ordering stock to having it on the shelf. Blank: the default.",
    )
    review_period_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(90)],
        help_text="Days between two orders for this centre. Blank: the default.",
    )

    class Meta:
        verbose_name = "centre replenishment settings"
        verbose_name_plural = "centre replenishment settings"

    def __str__(self) -> str:
        return f"replenishment settings of {self.center_id}"


class DemandDay(models.Model):
    """Units of one product that one centre sold on one day (the day its orders were
    confirmed), less the units of those orders that came back. Days without a row sold
    nothing: the forecast reads them as zeros."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    center = models.ForeignKey(FulfillmentCenter, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    sold = models.PositiveIntegerField()
    returned = models.PositiveIntegerField(default=0)
    units = models.PositiveIntegerField(help_text="Sold less returned.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["product", "center", "day"], name="demandday_unique_series_day"
            )
        ]
        indexes = [models.Index(fields=["day"])]

    def __str__(self) -> str:
        return f"{self.product_id}@{self.center_id} {self.day}: {self.units}"


class DemandBuild(models.Model):
    """How far the demand table is built (one row): the next build starts from here, less
    COT_FORECAST_REBUILD_DAYS."""

    name = models.CharField(max_length=20, primary_key=True, default="daily")
    built_through = models.DateField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"demand built through {self.built_through}"


class ForecastRun(models.Model):
    """One forecasting run. Its rows become the current ones only when it succeeds, all in
    one transaction: a run that fails leaves the previous results in place."""

    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    as_of = models.DateField(help_text="The first forecast day; history ends the day before.")
    horizon_days = models.PositiveSmallIntegerField()
    # The run's scope: empty lists mean every SKU / every centre.
    skus = models.JSONField(default=list, blank=True)
    centers = models.JSONField(default=list, blank=True)
    series = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"forecast run {self.pk} as of {self.as_of} ({self.status})"


class Replenishment(models.Model):
    """One SKU at one centre in one run: the demand forecast, its backtest, and what it
    means for the stock there. `current` marks the rows the page and the API show."""

    run = models.ForeignKey(ForecastRun, on_delete=models.CASCADE, related_name="rows")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    center = models.ForeignKey(FulfillmentCenter, on_delete=models.CASCADE, related_name="+")
    current = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=ReplenishmentStatus.choices)

    # The forecast: its model, the pattern that chose it, and the backtest.
    pattern = models.CharField(max_length=12, choices=DemandPattern.choices)
    model = models.CharField(max_length=40, blank=True)
    adi = models.FloatField(null=True, blank=True, help_text="Average days between sales.")
    cv2 = models.FloatField(null=True, blank=True, help_text="CV² of the sizes of sales.")
    history_days = models.PositiveIntegerField(default=0)
    mase = models.FloatField(
        null=True,
        blank=True,
        help_text="Backtest error relative to the 7-day seasonal naive forecast (below 1: "
        "better than repeating last week).",
    )
    # Per forecast day from the run's as_of: mean and interval bounds (units per day).
    forecast = models.JSONField(
        default=dict, blank=True, help_text='{"mean", "lo80", "hi80", "lo95", "hi95"}: lists.'
    )
    daily_demand = models.FloatField(default=0, help_text="Mean forecast units per day.")

    # The stock, as it was when the run looked.
    on_hand = models.PositiveIntegerField(default=0)
    reserved = models.PositiveIntegerField(default=0)
    expiring_units = models.PositiveIntegerField(
        default=0,
        help_text="Free units of batches that pass the shelf-life floor within the horizon.",
    )
    at_risk_units = models.PositiveIntegerField(
        default=0, help_text="Of those, units the forecast does not sell before the floor."
    )
    sellable_units = models.PositiveIntegerField(
        default=0, help_text="On hand − reserved − units at risk."
    )
    days_of_cover = models.FloatField(null=True, blank=True)
    lead_time_days = models.PositiveSmallIntegerField()
    review_period_days = models.PositiveSmallIntegerField()
    service_level = models.FloatField()
    order_up_to = models.PositiveIntegerField(null=True, blank=True)
    suggested_quantity = models.PositiveIntegerField(default=0)
    # [{"batch", "expires_on", "quantity", "to_center"}]: at-risk units another centre's
    # forecast sells before they pass the floor.
    transfers = models.JSONField(default=list, blank=True)
    # Days of cover less lead time (most urgent first); no-demand rows sort last.
    urgency = models.FloatField()

    class Meta:
        verbose_name = "replenishment"
        verbose_name_plural = "replenishment"
        constraints = [
            models.UniqueConstraint(
                fields=["product", "center"],
                condition=Q(current=True),
                name="replenishment_one_current_per_series",
            ),
            models.UniqueConstraint(
                fields=["run", "product", "center"], name="replenishment_unique_run_series"
            ),
        ]
        indexes = [models.Index(fields=["current", "urgency"])]

    def __str__(self) -> str:
        return f"{self.product_id}@{self.center_id} ({self.status})"
