"""What ops see of payments: every gateway call (attempt) with its key and outcome, a
refund action with a confirmation page, and the live state of every circuit breaker."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import redis
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from core.breaker import breaker_status, breaker_targets
from core.http import ExternalError
from payments.models import Payment, PaymentAttempt
from payments.services import NotRefundable, payment_refund, refund_left
from payments.services.refunds import REFUNDABLE


class PaymentAttemptInline(admin.TabularInline):
    model = PaymentAttempt
    extra = 0
    can_delete = False
    fields = (
        "kind",
        "gateway",
        "idempotency_key",
        "amount",
        "status",
        "reason",
        "requested_by",
        "vpa",
        "sends",
        "response",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = (
        "order_id",
        "method",
        "amount",
        "refunded_amount",
        "status",
        "gateway",
        "reference",
        "created_at",
    )
    list_filter = ("status", "method", "gateway")
    search_fields = ("order_id", "reference", "intent_id", "refund_reference")
    inlines = [PaymentAttemptInline]
    actions = ["refund_payments"]
    change_list_template = "admin/payments/payment/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # money moves only through the payment services

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.refund_payment")

    @admin.action(description="Refund selected payments (all or part)", permissions=["refund"])
    def refund_payments(
        self, request: HttpRequest, queryset: QuerySet[Payment]
    ) -> HttpResponse | None:
        payments = list(queryset)
        refundable = [p for p in payments if p.status in REFUNDABLE]
        for payment in refundable:
            payment.left = refund_left(payment)  # type: ignore[attr-defined]
        reason = request.POST.get("reason", "").strip()
        errors: list[str] = []
        if request.POST.get("confirm") == "yes" and not reason:
            errors.append("Say why: the reason goes into the order's timeline.")
        if request.POST.get("confirm") != "yes" or errors:
            return TemplateResponse(
                request,
                "admin/payments/payment/refund_confirm.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Refund payments",
                    "opts": self.model._meta,
                    "refundable": refundable,
                    "skipped": [p for p in payments if p.status not in REFUNDABLE],
                    "selected": [p.pk for p in payments],
                    "action": "refund_payments",
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                    "errors": errors,
                    "reason": reason,
                },
            )
        refunded, failed = 0, []
        for payment in refundable:
            raw = request.POST.get(f"amount_{payment.pk}", "").strip()
            try:
                amount = Decimal(raw).quantize(Decimal("0.01")) if raw else None
            except InvalidOperation:
                failed.append(f"{payment.order_id}: {raw!r} is not an amount")
                continue
            try:
                refunded += payment_refund(
                    order_id=payment.order_id,
                    amount=amount,
                    reason=reason,
                    actor=f"ops:{request.user.get_username()}",
                    vpa=request.POST.get(f"vpa_{payment.pk}", "").strip(),
                )
            except (ExternalError, NotRefundable) as exc:
                failed.append(f"{payment.order_id}: {exc}")
        self.message_user(request, f"Refunded: {refunded}.", messages.SUCCESS)
        if failed:
            self.message_user(request, "Not refunded: " + "; ".join(failed), messages.ERROR)
        return None

    def get_urls(self) -> list[URLPattern]:
        breakers = path(
            "breakers/",
            self.admin_site.admin_view(self.breakers_view),
            name="payments_payment_breakers",
        )
        return [breakers, *super().get_urls()]

    def breakers_view(self, request: HttpRequest) -> HttpResponse:
        """Every target's breaker, as every process sees it (read from Redis)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows, error = [], ""
        try:
            rows = [breaker_status(target) for target in breaker_targets()]
        except redis.RedisError as exc:
            error = f"Redis unreachable ({type(exc).__name__}): breakers let every call through."
        return TemplateResponse(
            request,
            "admin/payments/payment/breakers.html",
            {
                **self.admin_site.each_context(request),
                "title": "Circuit breakers",
                "opts": self.model._meta,
                "rows": rows,
                "error": error,
            },
        )
