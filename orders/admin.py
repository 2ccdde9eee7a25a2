"""The order desk for ops: find an order, read its whole story, re-drive it if stuck."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from logistics.models import Shipment
from orders import pipeline
from orders.enums import OrderStatus
from orders.models import Order, OrderEvent, OrderLine, OrderStep
from payments.models import Payment

REDRIVABLE = frozenset({OrderStatus.RECEIVED, OrderStatus.PROCESSING})


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> tuple[str, ...]:
        return tuple(self.fields or ())


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ("sku", "name", "schedule", "quantity", "unit_price", "line_total")


class OrderStepInline(ReadOnlyInline):
    model = OrderStep
    fields = ("step", "ok", "result", "attempts", "updated_at")


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = ("at", "type", "data")
    verbose_name_plural = "timeline"


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = (
        "number",
        "status",
        "failure_reason",
        "channel",
        "customer_id",
        "total_amount",
        "payment_method",
        "created_at",
    )
    list_filter = ("status", "channel", "payment_method", "failure_reason", "created_at")
    search_fields = ("number", "customer_id", "id")
    date_hierarchy = "created_at"
    list_select_related = ("client",)
    actions = ["rerun_pipeline"]
    fieldsets = [
        (None, {"fields": ("number", "id", "status", "failure_reason", "client", "channel")}),
        ("Customer", {"fields": ("customer_id", "delivery_address", "prescription_id")}),
        ("Money", {"fields": ("total_amount", "currency", "payment_method", "payment_summary")}),
        ("Fulfilment", {"fields": ("shipment_summary",)}),
        ("Times", {"fields": ("created_at", "updated_at", "confirmed_at")}),
    ]
    inlines = [OrderLineInline, OrderStepInline, OrderEventInline]

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        # Status changes only through the services, never by editing the row.
        return [field for _, options in self.fieldsets for field in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the order and its timeline are the audit record

    @admin.display(description="payment")
    def payment_summary(self, order: Order) -> str:
        payment = Payment.objects.filter(order_id=order.pk).first()
        if payment is None:
            return "-"
        return f"{payment.status} via {payment.gateway or '-'} ({payment.reference or 'no ref'})"

    @admin.display(description="shipments")
    def shipment_summary(self, order: Order) -> str:
        shipments = Shipment.objects.filter(order_id=order.pk)
        return (
            format_html_join(
                "",
                "<div>{} · {} {} · {}</div>",
                ((s.center, s.partner or "-", s.awb or "-", s.status) for s in shipments),
            )
            or "-"
        )

    @admin.action(
        description="Re-run the pipeline of selected stuck orders", permissions=["change"]
    )
    def rerun_pipeline(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        selected = list(queryset.values_list("pk", "status"))
        stuck = [pk for pk, status in selected if status in REDRIVABLE]
        for order_id in stuck:
            pipeline.start(order_id)
        self.message_user(
            request,
            f"Re-driven: {len(stuck)}; not stuck, left alone: {len(selected) - len(stuck)}.",
            messages.SUCCESS,
        )
