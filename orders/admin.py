"""The order desk for ops: find an order, read its whole story, re-drive it if stuck."""

from __future__ import annotations

import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from logistics.models import Shipment
from orders import (
    admin_returns,  # noqa: F401  (registers the Return admin)
    pipeline,
    selectors,
)
from orders.enums import CANCELLABLE, REDRIVABLE, Fulfilment, OrderStatus
from orders.models import Order, OrderEvent, OrderLine, OrderStep, Pickup
from orders.services.cancellation import OPS, order_cancel
from orders.services.pickup import (
    MAX_WRONG_CODES,
    PickupCodeInvalid,
    PickupLocked,
    order_collect,
    order_pickup_unlock,
)
from orders.services.step_runs import order_clear_needs_attention
from orders.services.transitions import InvalidTransition
from payments.models import Payment
from prescriptions.selectors import (
    prescription_review_queue_summary,
)

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
    OrderStatus.AWAITING_PAYMENT: "#b8860b",
    OrderStatus.READY_FOR_PICKUP: "#198754",
    OrderStatus.COLLECTED: "#146c43",
}


class PickupCodeForm(forms.Form):
    pickup_code = forms.RegexField(
        regex=r"^[0-9]{6}$",
        label="Pickup code the customer shows",
        error_messages={"invalid": "A pickup code is six digits."},
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric"}),
    )


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
        "needs_attention",
        "created_at",
    )
    list_filter = (
        "status",
        "needs_attention",
        InFlightForFilter,
        "channel",
        "fulfilment",
        "payment_method",
        "failure_reason",
        "created_at",
    )
    # And by AWB (get_search_results): shipments live in logistics.
    search_fields = ("number", "customer_id", "=id", "=request_id")
    date_hierarchy = "created_at"
    list_select_related = ("client",)
    actions = [
        "rerun_pipeline",
        "cancel_orders",
        "clear_attention_and_rerun",
        "collect_pickup",
        "unlock_pickup",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": (
                    "number",
                    "id",
                    "status",
                    "failure_reason",
                    "needs_attention",
                    "client",
                    "channel",
                )
            },
        ),
        ("Customer", {"fields": ("customer_id", "delivery_address", "prescription_id")}),
        (
            "Money",
            {
                "fields": (
                    "total_amount",
                    "currency",
                    "payment_method",
                    "payment_summary",
                    "payment_retry_until",
                )
            },
        ),
        (
            "Fulfilment",
            {
                "fields": (
                    "fulfilment",
                    "pickup_center",
                    "contact",
                    "pickup_summary",
                    "shipment_summary",
                )
            },
        ),
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

    def get_urls(self) -> list[URLPattern]:
        dashboard = path(
            "dashboard/",
            self.admin_site.admin_view(self.dashboard_view),
            name="orders_order_dashboard",
        )
        return [dashboard, *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """The operations dashboard: drawn server-side as SVG, no JavaScript, no CDN."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        data = selectors.order_dashboard(now=now)
        context = {
            **self.admin_site.each_context(request),
            "title": "Operations dashboard",
            "opts": self.model._meta,
            **data,
            "bars": _stacked_bars(data["buckets"]),
            "reason_bars": _reason_bars(data["failure_reasons"]),
            "reason_height": 24 * len(data["failure_reasons"]),
            "review_queue": prescription_review_queue_summary(now=now),
            "review_sla_minutes": settings.COT_REVIEW_SLA_SECONDS // 60,
            "now": now,
        }
        return TemplateResponse(request, "admin/orders/dashboard.html", context)

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

    @admin.display(description="pickup")
    def pickup_summary(self, order: Order) -> str:
        # Never the code: staff hand the order over against the one the customer shows.
        pickup = Pickup.objects.filter(order_id=order.pk).first()
        if pickup is None:
            return "-"
        if pickup.collected_at:
            return f"collected {pickup.collected_at:%Y-%m-%d %H:%M} UTC by {pickup.collected_by}"
        state = (
            f"LOCKED after {pickup.failed_attempts} wrong codes (unlock it with the action)"
            if pickup.locked_at
            else f"{pickup.failed_attempts} wrong codes of {MAX_WRONG_CODES}"
        )
        return (
            f"ready since {pickup.ready_at:%Y-%m-%d %H:%M} UTC, collect by "
            f"{pickup.collect_by:%Y-%m-%d %H:%M} UTC; {state}"
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

    @admin.action(description="Cancel selected orders", permissions=["change"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        """Cancel orders that have not shipped, after a confirmation page: stock back,
        payment refunded or voided, bookings cancelled (`cancelled_by_ops`)."""
        orders = list(queryset.order_by("created_at"))
        cancellable = [o for o in orders if o.status in CANCELLABLE]
        if request.POST.get("confirm") != "yes":
            return TemplateResponse(
                request,
                "admin/orders/order/cancel_confirm.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Cancel orders?",
                    "opts": self.model._meta,
                    "cancellable": cancellable,
                    "skipped": [o for o in orders if o.status not in CANCELLABLE],
                    "selected": [o.pk for o in orders],
                    "action": "cancel_orders",
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        note = request.POST.get("note", "").strip()[:500]
        cancelled, refused = 0, []
        for order in cancellable:
            try:
                order_cancel(
                    order=order, by=OPS, actor=f"ops:{request.user.get_username()}", note=note
                )
                cancelled += 1
            except InvalidTransition as exc:
                refused.append(f"{order.number} ({exc.current})")
        self.message_user(request, f"Cancelled: {cancelled}.", messages.SUCCESS)
        if refused:
            self.message_user(
                request, "Moved on meanwhile, not cancelled: " + ", ".join(refused), messages.ERROR
            )
        return None

    @admin.action(
        description="Clear 'needs attention' and re-run the pipeline (after fixing the cause)",
        permissions=["change"],
    )
    def clear_attention_and_rerun(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        selected = list(queryset.filter(needs_attention=True).values_list("pk", "status"))
        rerun = 0
        for order_id, status in selected:
            if order_clear_needs_attention(order_id=order_id) and status in REDRIVABLE:
                pipeline.start(order_id)
                rerun += 1
        self.message_user(
            request, f"Cleared: {len(selected)}; re-driven: {rerun}.", messages.SUCCESS
        )

    @admin.action(
        description="Hand over a pickup order (enter the customer's pickup code)",
        permissions=["change"],
    )
    def collect_pickup(
        self, request: HttpRequest, queryset: QuerySet[Order]
    ) -> HttpResponse | None:
        """Collection at the counter: one order ready for pickup, the code the customer
        shows. A wrong code counts as it does through the API (the fifth locks it)."""
        ready = list(
            queryset.filter(status=OrderStatus.READY_FOR_PICKUP, fulfilment=Fulfilment.PICKUP)
        )
        if len(ready) != 1 or queryset.count() != 1:
            self.message_user(
                request, "Select exactly one order that is ready for pickup.", messages.ERROR
            )
            return None
        [order] = ready
        form = PickupCodeForm(request.POST if request.POST.get("confirm") == "yes" else None)
        if form.is_valid():
            try:
                order_collect(
                    order_id=order.pk,
                    code=form.cleaned_data["pickup_code"],
                    by=f"ops:{request.user.get_username()}",
                )
            except PickupCodeInvalid as exc:
                form.add_error(
                    "pickup_code",
                    f"Wrong code: {exc.attempts_left} tries left before collection locks.",
                )
            except PickupLocked:
                self.message_user(
                    request,
                    f"{order.number}: collection is locked after {MAX_WRONG_CODES} wrong codes. "
                    "Check who is collecting, then unlock it.",
                    messages.ERROR,
                )
                return None
            except InvalidTransition as exc:
                self.message_user(
                    request, f"{order.number} is {exc.current} now: not collected.", messages.ERROR
                )
                return None
            else:
                self.message_user(request, f"{order.number} collected.", messages.SUCCESS)
                return None
        return TemplateResponse(
            request,
            "admin/orders/order/collect.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Hand over {order.number}",
                "opts": self.model._meta,
                "order": order,
                "form": form,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(
        description="Unlock pickup collection (after too many wrong codes)",
        permissions=["change"],
    )
    def unlock_pickup(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        by = f"ops:{request.user.get_username()}"
        selected = list(queryset.values_list("pk", "number"))
        unlocked = [number for pk, number in selected if order_pickup_unlock(order_id=pk, by=by)]
        self.message_user(
            request,
            f"Unlocked: {len(unlocked)}; not locked (or no longer ready for pickup), left "
            f"alone: {len(selected) - len(unlocked)}.",
            messages.SUCCESS,
        )


CHART_WIDTH, CHART_HEIGHT = 720, 180
SERIES = (("confirmed", "#198754"), ("failed", "#dc3545"), ("other", "#6c757d"))


def _stacked_bars(buckets: list[selectors.DashboardBucket]) -> list[dict[str, Any]]:
    """Rectangles of a stacked bar chart: one bar per bucket, one segment per series."""
    peak = max((b.confirmed + b.failed + b.other for b in buckets), default=0) or 1
    width = CHART_WIDTH / max(len(buckets), 1)
    bars = []
    for index, bucket in enumerate(buckets):
        top = CHART_HEIGHT
        segments = []
        for name, colour in SERIES:
            height = getattr(bucket, name) / peak * CHART_HEIGHT
            top -= height
            segments.append({"y": round(top, 1), "height": round(height, 1), "colour": colour})
        bars.append(
            {
                "x": round(index * width, 1),
                "width": round(width - 1, 1),
                "segments": segments,
                "label": f"{bucket.start:%H:%M} UTC: {bucket.confirmed} confirmed, "
                f"{bucket.failed} failed, {bucket.other} in flight or on hold",
            }
        )
    return bars


def _reason_bars(reasons: list[tuple[str, int]]) -> list[dict[str, Any]]:
    peak = max((n for _, n in reasons), default=0) or 1
    return [
        {"reason": reason, "count": n, "width": round(n / peak * 400, 1), "y": i * 24}
        for i, (reason, n) in enumerate(reasons)
    ]
