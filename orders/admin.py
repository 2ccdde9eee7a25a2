"""The order desk for ops: find an order, read its whole story, re-drive it if stuck."""

from __future__ import annotations

import datetime

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from logistics.models import Shipment
from orders import pipeline
from orders.enums import OrderStatus
from orders.models import Order, OrderEvent, OrderLine, OrderStep
from payments.models import Payment

REDRIVABLE = frozenset({OrderStatus.RECEIVED, OrderStatus.PROCESSING})
# Green: done well; amber: waiting; red: ended without a sale.
STATUS_COLOURS = {
    OrderStatus.RECEIVED: "#6c757d",
    OrderStatus.PROCESSING: "#0d6efd",
    OrderStatus.ON_HOLD: "#b8860b",
    OrderStatus.CONFIRMED: "#198754",
    OrderStatus.SHIPPED: "#198754",
    OrderStatus.DELIVERED: "#146c43",
    OrderStatus.REJECTED: "#dc3545",
    OrderStatus.PAYMENT_FAILED: "#dc3545",
    OrderStatus.CANCELLED: "#8b0000",
}


class InFlightForFilter(admin.SimpleListFilter):
    """Orders still received/processing and untouched for longer than N minutes: the ones a
    person should look at (the sweeper re-drives them after COT_STUCK_ORDER_SECONDS)."""

    title = "in flight for more than"
    parameter_name = "in_flight_minutes"
    MINUTES = (5, 15, 60)

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [(str(m), f"{m} minutes") for m in self.MINUTES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Order]) -> QuerySet[Order]:
        if self.value() not in {str(m) for m in self.MINUTES}:
            return queryset
        cutoff = timezone.now() - datetime.timedelta(minutes=int(self.value()))
        return queryset.filter(status__in=REDRIVABLE, updated_at__lt=cutoff)


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
        "coloured_status",
        "failure_reason",
        "channel",
        "customer_id",
        "total_amount",
        "payment_method",
        "created_at",
    )
    list_filter = (
        "status",
        InFlightForFilter,
        "channel",
        "payment_method",
        "failure_reason",
        "created_at",
    )
    # And by AWB (get_search_results): shipments live in logistics.
    search_fields = ("number", "customer_id", "=id", "=request_id")
    date_hierarchy = "created_at"
    list_select_related = ("client",)
    actions = ["rerun_pipeline"]
    fieldsets = [
        (None, {"fields": ("number", "id", "status", "failure_reason", "client", "channel")}),
        ("Customer", {"fields": ("customer_id", "delivery_address", "prescription_id")}),
        ("Money", {"fields": ("total_amount", "currency", "payment_method", "payment_summary")}),
        ("Fulfilment", {"fields": ("shipment_summary",)}),
        ("Times", {"fields": ("created_at", "updated_at", "confirmed_at", "request_id")}),
    ]
    inlines = [OrderLineInline, OrderStepInline, OrderEventInline]

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        # Status changes only through the services, never by editing the row.
        return [field for _, options in self.fieldsets for field in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the order and its timeline are the audit record

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Order], search_term: str
    ) -> tuple[QuerySet[Order], bool]:
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            by_awb = Shipment.objects.filter(awb=term).values("order_id")
            results |= queryset.filter(pk__in=by_awb)
        return results, may_have_duplicates

    @admin.display(description="status", ordering="status")
    def coloured_status(self, order: Order) -> str:
        return format_html(
            '<strong style="color: {}">{}</strong>',
            STATUS_COLOURS.get(order.status, "inherit"),
            order.get_status_display(),
        )

    @admin.display(description="payment")
    def payment_summary(self, order: Order) -> str:
        payment = Payment.objects.filter(order_id=order.pk).first()
        if payment is None:
            return "-"
        return format_html(
            '<a href="{}">{} via {} ({})</a>',
            reverse("admin:payments_payment_change", args=[payment.pk]),
            payment.status,
            payment.gateway or "-",
            payment.reference or "no ref",
        )

    @admin.display(description="shipments")
    def shipment_summary(self, order: Order) -> str:
        shipments = Shipment.objects.filter(order_id=order.pk)
        return (
            format_html_join(
                "",
                '<div><a href="{}">{} · {} {} · {}</a></div>',
                (
                    (
                        reverse("admin:logistics_shipment_change", args=[s.pk]),
                        s.center,
                        s.partner or "-",
                        s.awb or "-",
                        s.status,
                    )
                    for s in shipments
                ),
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
