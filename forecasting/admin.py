"""The inventory team's replenishment page: every SKU and centre, most urgent first, with
a chart per row and a CSV export of what the filters show."""

from __future__ import annotations

import csv
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from core.admin import ReadOnlyAdminMixin
from forecasting import selectors
from forecasting.charts import forecast_chart_svg
from forecasting.enums import ReplenishmentStatus
from forecasting.models import CenterReplenishmentSettings, ForecastRun, Replenishment

STATUS_COLOURS = {
    ReplenishmentStatus.STOCKOUT_RISK: "#ba2121",
    ReplenishmentStatus.REORDER: "#c77c00",
    ReplenishmentStatus.OK: "#2e7d32",
    ReplenishmentStatus.NO_DEMAND: "#6c757d",
}
CHART_HISTORY_DAYS = 90
CSV_COLUMNS = (
    "sku",
    "name",
    "center",
    "schedule",
    "status",
    "on_hand",
    "reserved",
    "expiring_units",
    "at_risk_units",
    "sellable_units",
    "daily_demand",
    "days_of_cover",
    "lead_time_days",
    "review_period_days",
    "service_level",
    "order_up_to",
    "suggested_quantity",
    "transfers",
    "pattern",
    "model",
    "mase",
    "as_of",
)


def _transfers_text(row: Replenishment) -> str:
    return "; ".join(f"{t['quantity']} of {t['batch']} to {t['to_center']}" for t in row.transfers)


class ScheduleFilter(admin.SimpleListFilter):
    title = "drug schedule"
    parameter_name = "schedule"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from inventory.enums import Schedule

        return list(Schedule.choices)

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(product__schedule=self.value()) if self.value() else queryset


@admin.register(Replenishment)
class ReplenishmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "sku",
        "product_name",
        "center_code",
        "status_badge",
        "sellable_units",
        "daily_demand",
        "cover",
        "lead_time_days",
        "order_up_to",
        "suggested_quantity",
        "at_risk_units",
        "transfer_list",
        "backtest",
        "chart",
    )
    list_filter = ("center", ScheduleFilter, "status", "pattern")
    search_fields = ("product__sku", "product__name")
    ordering = ("urgency", "pk")
    list_select_related = ("product", "center")
    list_per_page = 100
    change_list_template = "admin/forecasting/replenishment/change_list.html"

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).filter(current=True)

    @admin.display(description="SKU", ordering="product__sku")
    def sku(self, row: Replenishment) -> str:
        return row.product.sku

    @admin.display(description="product")
    def product_name(self, row: Replenishment) -> str:
        return row.product.name

    @admin.display(description="centre", ordering="center__code")
    def center_code(self, row: Replenishment) -> str:
        return row.center.code

    @admin.display(description="status", ordering="status")
    def status_badge(self, row: Replenishment) -> str:
        return format_html(
            '<strong class="replenishment-{}" style="color:{}">{}</strong>',
            row.status,
            STATUS_COLOURS[ReplenishmentStatus(row.status)],
            row.get_status_display(),
        )

    @admin.display(description="days of cover", ordering="urgency")
    def cover(self, row: Replenishment) -> str:
        if row.days_of_cover is None:
            return "–"
        if row.days_of_cover < row.lead_time_days:
            return format_html('<strong style="color:#ba2121">{}</strong>', row.days_of_cover)
        return str(row.days_of_cover)

    @admin.display(description="transfer suggestions")
    def transfer_list(self, row: Replenishment) -> str:
        if not row.transfers:
            return "–"
        return format_html_join(
            "",
            "<div>{} of {} → {}</div>",
            ((t["quantity"], t["batch"], t["to_center"]) for t in row.transfers),
        )

    @admin.display(description="backtest MASE", ordering="mase")
    def backtest(self, row: Replenishment) -> str:
        if row.mase is None:
            return "–"
        return format_html(
            '<span title="{}" style="color:{}">{}</span>',
            row.model,
            "#2e7d32" if row.mase < 1 else "#ba2121",
            f"{row.mase:.2f}",
        )

    @admin.display(description="chart")
    def chart(self, row: Replenishment) -> str:
        url = reverse("admin:forecasting_replenishment_chart", args=[row.pk])
        return format_html('<a href="{}">chart</a>', url)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        context = {
            "latest_run": selectors.forecast_run_latest(),
            "service_level": settings.COT_REPLENISHMENT_SERVICE_LEVEL,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:pk>/chart/",
                self.admin_site.admin_view(self.chart_view),
                name="forecasting_replenishment_chart",
            ),
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="forecasting_replenishment_export",
            ),
            *super().get_urls(),
        ]

    def chart_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        row = get_object_or_404(
            Replenishment.objects.select_related("product", "center", "run"), pk=pk
        )
        history = selectors.demand_history(
            product_id=row.product_id,
            center_id=row.center_id,
            end=row.run.as_of,
            days=CHART_HISTORY_DAYS,
        )
        svg = forecast_chart_svg(
            history=history,
            as_of=row.run.as_of,
            forecast=row.forecast,
            title=f"{row.product.sku} at {row.center.code}: {CHART_HISTORY_DAYS} days sold, "
            f"{row.run.horizon_days} days forecast",
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"{row.product.sku} – {row.product.name} at {row.center.code}",
            "opts": self.model._meta,
            "row": row,
            "svg": svg,
            "forecast_total": round(sum(row.forecast.get("mean", [])), 1),
            "history_total": sum(units for _, units in history),
            "transfers": _transfers_text(row),
        }
        return TemplateResponse(request, "admin/forecasting/replenishment/chart.html", context)

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The rows the page shows with the same filters and search, every page of them."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            rows = self.get_changelist_instance(request).get_queryset(request)
        except admin.options.IncorrectLookupParameters:
            raise Http404("Bad filter.") from None
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="replenishment.csv"'
        writer = csv.writer(response)
        writer.writerow(CSV_COLUMNS)
        for row in rows.select_related("run").iterator(chunk_size=2000):
            writer.writerow(
                [
                    row.product.sku,
                    row.product.name,
                    row.center.code,
                    row.product.schedule,
                    row.status,
                    row.on_hand,
                    row.reserved,
                    row.expiring_units,
                    row.at_risk_units,
                    row.sellable_units,
                    row.daily_demand,
                    "" if row.days_of_cover is None else row.days_of_cover,
                    row.lead_time_days,
                    row.review_period_days,
                    row.service_level,
                    "" if row.order_up_to is None else row.order_up_to,
                    row.suggested_quantity,
                    _transfers_text(row),
                    row.pattern,
                    row.model,
                    "" if row.mase is None else f"{row.mase:.3f}",
                    row.run.as_of.isoformat(),
                ]
            )
        return response


@admin.register(CenterReplenishmentSettings)
class CenterReplenishmentSettingsAdmin(admin.ModelAdmin):
    list_display = ("center", "lead_time", "review_period")
    fields = ("center", "lead_time_days", "review_period_days")

    @admin.display(description="lead time (days)")
    def lead_time(self, settings_row: CenterReplenishmentSettings) -> str:
        return str(
            settings_row.lead_time_days or f"{settings.COT_REPLENISHMENT_LEAD_TIME_DAYS} (default)"
        )

    @admin.display(description="review period (days)")
    def review_period(self, settings_row: CenterReplenishmentSettings) -> str:
        return str(
            settings_row.review_period_days or f"{settings.COT_REPLENISHMENT_REVIEW_DAYS} (default)"
        )

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_superuser


@admin.register(ForecastRun)
class ForecastRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("pk", "started_at", "finished_at", "status", "as_of", "series", "scope")
    list_filter = ("status",)
    readonly_fields = [f.name for f in ForecastRun._meta.fields]

    @admin.display(description="scope")
    def scope(self, run: ForecastRun) -> str:
        parts = [", ".join(run.skus) or "every SKU", ", ".join(run.centers) or "every centre"]
        return " at ".join(parts)
