from django.contrib import admin
from django.http import HttpRequest

from payments.models import Payment, PaymentAttempt


class PaymentAttemptInline(admin.TabularInline):
    model = PaymentAttempt
    extra = 0
    can_delete = False
    fields = ("kind", "gateway", "idempotency_key", "status", "response", "created_at")
    readonly_fields = fields


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("order_id", "method", "amount", "status", "gateway", "reference", "created_at")
    list_filter = ("status", "method", "gateway")
    search_fields = ("order_id", "reference", "intent_id")
    inlines = [PaymentAttemptInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # money moves only through the payment services

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
