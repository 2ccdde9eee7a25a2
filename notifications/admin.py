"""What ops see of customer messages and outbound webhooks: every message with its
attempts, the editable templates, and every webhook delivery with its attempts and a
resend action."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from notifications.models import (
    Notification,
    NotificationTemplate,
    WebhookAttempt,
    WebhookDelivery,
)
from notifications.services.messages import notification_resend
from notifications.services.webhooks import webhook_deliveries_resend
from notifications.tasks import notify_customer, webhook_pump


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = (
        "order_id",
        "event_type",
        "channel",
        "to",
        "status",
        "attempts",
        "resends",
        "created_at",
    )
    list_filter = ("status", "channel", "event_type")
    search_fields = ("order_id", "to")
    readonly_fields = [f.name for f in Notification._meta.fields]
    actions = ["resend_messages"]

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("notifications.resend_notification")

    @admin.action(description="Send selected messages again", permissions=["resend"])
    def resend_messages(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        by = f"ops:{request.user.get_username()}"
        resent = 0
        for notification in queryset:
            if notification_resend(notification_id=notification.pk, by=by):
                resent += 1
                transaction.on_commit(
                    lambda n=notification: notify_customer.delay(
                        str(n.order_id), n.event_type, n.event_id
                    )
                )
        self.message_user(
            request,
            f"Sending again: {resent}. Messages still being sent were left alone.",
            messages.SUCCESS,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(NotificationTemplate)
class NotificationTemplateAdmin(admin.ModelAdmin):
    list_display = ("event_type", "channel", "subject", "active", "updated_at")
    list_filter = ("channel", "active")
    fieldsets = (
        (None, {"fields": ("event_type", "channel", "active", "subject", "body")}),
        (
            "Template help",
            {
                "description": (
                    "Django template language. Available: {{ number }}, {{ status }}, "
                    "{{ reason }}, {{ reason_code }}, {{ name }}, {{ total }}, and "
                    "{% for item in items %}{{ item.name }} {{ item.sku }} "
                    "{{ item.quantity }} {{ item.total }}{% endfor %}. A template that "
                    "fails when sending is replaced by the built-in default."
                ),
                "fields": (),
            },
        ),
    )

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # switch a template off instead: the default then applies


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "duration_ms", "status_code", "error")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "event_id",
        "event_type",
        "order_link",
        "client",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
    )
    list_filter = ("status", "event_type", "client")
    search_fields = ("order__number", "=order__id", "=event__id")
    list_select_related = ("order", "client")
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields] + ["order_link"]
    inlines = [WebhookAttemptInline]
    actions = ["resend"]

    @admin.display(description="order", ordering="order__number")
    def order_link(self, obj: WebhookDelivery) -> str:
        url = reverse("admin:orders_order_change", args=[obj.order_id])
        return format_html('<a href="{}">{}</a>', url, obj.order.number)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("notifications.resend_webhookdelivery")

    @admin.action(description="Resend selected deliveries", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        deliveries = list(queryset)
        orders = webhook_deliveries_resend(deliveries=deliveries)
        for order_id in orders:
            webhook_pump.delay(str(order_id))
        self.message_user(
            request,
            f"Queued again, each with a fresh retry window: deliveries of {len(orders)} order(s); "
            "deliveries still pending were left as they are.",
            messages.SUCCESS,
        )
