from django.contrib import admin
from django.http import HttpRequest

from logistics.models import Shipment, ShipmentItem


class ShipmentItemInline(admin.TabularInline):
    model = ShipmentItem
    extra = 0
    can_delete = False
    readonly_fields = ("sku", "batch", "quantity")


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ("order_id", "center", "partner", "awb", "status", "eta", "created_at")
    list_filter = ("status", "partner", "center")
    search_fields = ("order_id", "awb")
    readonly_fields = ("order_id", "center", "partner", "awb", "eta", "idempotency_key")
    inlines = [ShipmentItemInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
