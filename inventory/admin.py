from django.contrib import admin
from django.db.models import F, QuerySet
from django.http import HttpRequest

from inventory.models import FulfillmentCenter, Product, Reservation, ReservationItem, StockBatch


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "price", "schedule", "active")
    list_filter = ("schedule", "active")
    search_fields = ("sku", "name")


@admin.register(FulfillmentCenter)
class FulfillmentCenterAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "priority", "pincode_prefixes", "active")
    list_filter = ("active",)


@admin.register(StockBatch)
class StockBatchAdmin(admin.ModelAdmin):
    list_display = ("product", "center", "batch", "expires_on", "on_hand", "reserved", "available")
    list_filter = ("center", "product__schedule")
    search_fields = ("product__sku", "product__name", "batch")
    list_select_related = ("product", "center")
    date_hierarchy = "expires_on"
    ordering = ("product__sku", "center__priority", "expires_on")
    # Reservations move `reserved`; editing it by hand would break the books.
    readonly_fields = ("reserved",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[StockBatch]:
        return super().get_queryset(request).annotate(_available=F("on_hand") - F("reserved"))

    @admin.display(ordering="_available")
    def available(self, batch: StockBatch) -> int:
        return batch.available


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
