"""What the inventory team works with: stock per product and centre, batches near expiry,
low stock, a CSV import of stock under `load_catalog`'s rules, and the record of units
that came back (restocked or written off), read-only, with a CSV export."""

from __future__ import annotations

import csv
import datetime
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from core.admin import ReadOnlyAdminMixin
from inventory.models import (
    FulfillmentCenter,
    Product,
    Reservation,
    ReservationItem,
    StockBatch,
    StockLevel,
    StockReturn,
    StockWriteOff,
)
from inventory.services import CatalogError, catalog_load_stock_csv
from inventory.services.catalog import STOCK_CSV_COLUMNS


class ExpiresWithinFilter(admin.SimpleListFilter):
    title = "expires"
    parameter_name = "expires_within"
    field = "expires_on"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("expired", "already expired"),
            ("30", "within 30 days"),
            ("60", "within 60 days"),
            ("90", "within 90 days"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        today = timezone.localdate()
        if self.value() == "expired":
            return queryset.filter(**{f"{self.field}__lt": today})
        if self.value() in ("30", "60", "90"):
            until = today + datetime.timedelta(days=int(self.value()))
            return queryset.filter(**{f"{self.field}__gte": today, f"{self.field}__lte": until})
        return queryset


class NearestExpiryFilter(ExpiresWithinFilter):
    title = "nearest expiry"
    field = "nearest_expiry"


class LowStockFilter(admin.SimpleListFilter):
    title = "available units"
    parameter_name = "low_stock"
    field = "available"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("0", "none available"), ("10", "10 or fewer"), ("50", "50 or fewer")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("0", "10", "50"):
            return queryset.filter(**{f"{self.field}__lte": int(self.value())})
        return queryset


class BatchLowStockFilter(LowStockFilter):
    field = "_available"


class StockCsvForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text=f"Columns: {','.join(STOCK_CSV_COLUMNS)}. All rows load, or none.",
    )


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = (
        "sku",
        "name",
        "composition",
        "manufacturer",
        "price",
        "schedule",
        "cold_chain",
        "active",
    )
    list_filter = ("schedule", "cold_chain", "active")
    search_fields = ("sku", "name", "composition", "manufacturer")


@admin.register(FulfillmentCenter)
class FulfillmentCenterAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "priority", "pincode_prefixes", "active")
    list_filter = ("active",)


@admin.register(StockBatch)
class StockBatchAdmin(admin.ModelAdmin):
    list_display = ("product", "center", "batch", "expires_on", "on_hand", "reserved", "available")
    list_filter = ("center", ExpiresWithinFilter, BatchLowStockFilter, "product__schedule")
    search_fields = ("product__sku", "product__name", "batch")
    list_select_related = ("product", "center")
    date_hierarchy = "expires_on"
    change_list_template = "admin/inventory/stockbatch/change_list.html"
    ordering = ("product__sku", "center__priority", "expires_on")
    # Reservations move `reserved`; editing it by hand would break the books.
    readonly_fields = ("reserved",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[StockBatch]:
        return super().get_queryset(request).annotate(_available=F("on_hand") - F("reserved"))

    @admin.display(ordering="_available")
    def available(self, batch: StockBatch) -> int:
        return batch.available

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_csv_view)
        return [path("import-csv/", view, name="inventory_stockbatch_import"), *super().get_urls()]

    def import_csv_view(self, request: HttpRequest) -> HttpResponse:
        """Set stock from a CSV file through `catalog_load`: the same validation, the same
        all-or-nothing transaction; the first bad line is named."""
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        form = StockCsvForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                text = form.cleaned_data["file"].read().decode("utf-8-sig")
                counts = catalog_load_stock_csv(text=text)
            except UnicodeDecodeError:
                form.add_error("file", "The file is not UTF-8 text.")
            except CatalogError as exc:
                form.add_error("file", f"Nothing imported; bad entry {exc}")
            else:
                self.message_user(
                    request, f"Imported {counts.stock} stock batches.", messages.SUCCESS
                )
                return HttpResponseRedirect(reverse("admin:inventory_stockbatch_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import stock from CSV",
            "form": form,
        }
        return TemplateResponse(request, "admin/inventory/stockbatch/import_csv.html", context)


@admin.register(StockLevel)
class StockLevelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "product",
        "center",
        "on_hand",
        "reserved",
        "available",
        "nearest_expiry",
        "batches",
    )
    list_filter = ("center", LowStockFilter, NearestExpiryFilter, "product__schedule")
    search_fields = ("product__sku", "product__name")
    list_select_related = ("product", "center")
    ordering = ("product__sku", "center__priority")


class ReservationItemInline(admin.TabularInline):
    model = ReservationItem
    extra = 0
    can_delete = False
    readonly_fields = ("batch", "quantity")


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ("order_id", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("order_id",)
    readonly_fields = ("order_id", "status", "created_at", "updated_at")
    inlines = [ReservationItemInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


STOCK_RETURN_CSV_COLUMNS = (
    "batch",
    "sku",
    "centre",
    "quantity",
    "outcome",
    "reason",
    "order",
    "reference",
    "by",
    "at",
    "note",
)


class _Echo:
    """csv.writer's file: hands each line back instead of buffering the whole export."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value: object) -> object:
    # A note or reference starting with = + - @ would run as a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return f"'{value}"
    return value


@admin.register(StockReturn)
class StockReturnAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every unit taken back. Read-only for everyone, superusers too: the rows are the
    evidence of where stock went."""

    list_display = (
        "created_at",
        "sku",
        "center",
        "batch_code",
        "quantity",
        "outcome",
        "reason",
        "order_id",
        "reference",
        "by",
    )
    list_filter = ("outcome", "reason", "batch__center", "created_at")
    search_fields = ("batch__product__sku", "batch__batch", "order_id", "reference")
    list_select_related = ("batch__product", "batch__center")
    date_hierarchy = "created_at"
    change_list_template = "admin/inventory/stockreturn/change_list.html"
    readonly_fields = [f.name for f in StockReturn._meta.fields]
    export_filename = "stock-returns.csv"

    @admin.display(description="SKU", ordering="batch__product__sku")
    def sku(self, record: StockReturn) -> str:
        return record.batch.product.sku

    @admin.display(description="centre", ordering="batch__center__code")
    def center(self, record: StockReturn) -> str:
        return record.batch.center.code

    @admin.display(description="batch", ordering="batch__batch")
    def batch_code(self, record: StockReturn) -> str:
        return record.batch.batch

    def _export_url_name(self) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_export"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.export_csv_view)
        return [path("export-csv/", view, name=self._export_url_name()), *super().get_urls()]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        export_url = reverse(f"admin:{self._export_url_name()}")
        return super().changelist_view(request, {**(extra_context or {}), "export_url": export_url})

    def export_csv_view(self, request: HttpRequest) -> HttpResponse:
        """The rows the list shows under the same filters, search and order, all pages."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            rows = self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters:
            changelist = f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"
            return HttpResponseRedirect(reverse(changelist))
        response = StreamingHttpResponse(self._csv_lines(rows), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{self.export_filename}"'
        return response

    def _csv_lines(self, rows: QuerySet[StockReturn]) -> Iterator[str]:
        writer = csv.writer(_Echo())
        yield writer.writerow(STOCK_RETURN_CSV_COLUMNS)
        for record in rows.select_related("batch__product", "batch__center").iterator(2000):
            yield writer.writerow(
                [
                    _csv_cell(value)
                    for value in (
                        record.batch.batch,
                        record.batch.product.sku,
                        record.batch.center.code,
                        record.quantity,
                        record.outcome,
                        record.reason,
                        str(record.order_id),
                        record.reference,
                        record.by,
                        record.created_at.isoformat(),
                        record.note,
                    )
                ]
            )


@admin.register(StockWriteOff)
class StockWriteOffAdmin(StockReturnAdmin):
    """The write-offs alone: what came back and could not be sold again."""

    list_filter = ("reason", "batch__center", "created_at")
    export_filename = "stock-write-offs.csv"
