"""What ops see of logistics: every shipment with its partner, AWB and tracking status,
every booking request (attempt) with its key and outcome, and the failed deliveries that
need someone to call the courier or the customer."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from logistics.enums import ShipmentStatus
from logistics.models import Shipment, ShipmentAttempt, ShipmentItem, ShipmentUpdate


class ShipmentItemInline(admin.TabularInline):
    model = ShipmentItem
    extra = 0
    can_delete = False
    readonly_fields = ("sku", "batch", "quantity")


class ShipmentAttemptInline(admin.TabularInline):
    model = ShipmentAttempt
    extra = 0
    can_delete = False
    fields = ("partner", "idempotency_key", "status", "sends", "response", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ShipmentUpdateInline(admin.TabularInline):
    """The courier's updates that moved the shipment, in the order applied."""

    model = ShipmentUpdate
    extra = 0
    can_delete = False
    fields = ("status", "at", "attempt", "reason", "created_at")
    readonly_fields = fields
    ordering = ("pk",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class NeedsAttentionFilter(admin.SimpleListFilter):
    """The courier's last word is a failed delivery: ops follow up (the order's timeline
    has a `shipment.delivery_failed` event with the attempt and the reason)."""

    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [("failed_deliveries", "Failed deliveries")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Shipment]) -> QuerySet[Shipment]:
        if self.value() == "failed_deliveries":
            return queryset.filter(status=ShipmentStatus.DELIVERY_FAILED)
        return queryset


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = (
        "order_id",
        "center",
        "partner",
        "awb",
        "status",
        "status_at",
        "delivery_attempts",
        "eta",
        "created_at",
    )
    list_filter = (NeedsAttentionFilter, "status", "partner", "center")
    search_fields = ("order_id", "awb")
    readonly_fields = (
        "order_id",
        "center",
        "partner",
        "awb",
        "eta",
        "status",
        "status_at",
        "delivery_attempts",
        "last_failure_reason",
        "idempotency_key",
    )
    inlines = [ShipmentItemInline, ShipmentUpdateInline, ShipmentAttemptInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # shipments move only through booking, cancellation and tracking

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
