from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from core.models import ApiClient, ClientAPIKey
from core.services import api_key_rotate, webhook_secret_rotate
from core.webhook_urls import WebhookUrlInvalid, WebhookUrlRefused, webhook_url_check

# The library's own key model is unused: keys belong to clients (ClientAPIKey).
admin.site.unregister(APIKey)


class ReadOnlyAdminMixin:
    """For records written only by the system (ledgers, runs, trails): staff look, nobody
    adds, changes or deletes them in admin."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ApiClientForm(forms.ModelForm):
    webhook_url = forms.URLField(
        required=False,
        max_length=200,
        assume_scheme="https",
        help_text="https, to a public address (COT_ALLOW_PRIVATE_WEBHOOKS also allows http "
        "and loopback or private addresses). Empty: no webhooks.",
    )

    class Meta:
        model = ApiClient
        fields = (
            "name",
            "channel",
            "webhook_url",
            "active",
            "payment_retry_seconds",
            "orders_per_second",
            "requests_per_second",
        )

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data["webhook_url"]
        # Checked when set or changed; every delivery checks it again.
        if url and url != self.initial.get("webhook_url"):
            try:
                webhook_url_check(url)
            except (WebhookUrlInvalid, WebhookUrlRefused) as exc:
                raise forms.ValidationError(f"Refused: {exc}.", code="webhook_url") from None
        return url


class RotateForm(forms.Form):
    grace_hours = forms.FloatField(
        min_value=0,
        max_value=24 * 365,
        initial=24,
        help_text="How long the replaced key or secret keeps working (0: it ends now).",
    )


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = ApiClientForm
    list_display = (
        "name",
        "channel",
        "active",
        "webhook_url",
        "payment_retry_seconds",
        "orders_per_second",
        "requests_per_second",
        "created_at",
    )
    list_filter = ("channel", "active")
    search_fields = ("name",)
    # The secrets are never shown here: a new one is shown once, when it is made.
    fields = (
        "name",
        "channel",
        "webhook_url",
        "active",
        "payment_retry_seconds",
        "orders_per_second",
        "requests_per_second",
        "webhook_secret_previous_until",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("webhook_secret_previous_until", "created_at", "updated_at")
    actions = ["rotate_api_key", "rotate_webhook_secret"]

    def save_model(self, request: HttpRequest, obj: ApiClient, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change and obj.webhook_url:
            self.message_user(
                request,
                f"The webhook signing secret of {obj.name} is: {obj.webhook_secret} "
                "Store it somewhere safe: it is not shown again (rotate it to get a new one).",
                messages.WARNING,
            )

    @admin.action(description="Rotate the API key of selected clients", permissions=["change"])
    def rotate_api_key(
        self, request: HttpRequest, queryset: QuerySet[ApiClient]
    ) -> HttpResponse | None:
        return self._rotate(request, queryset, "rotate_api_key", "API key", api_key_rotate)

    @admin.action(
        description="Rotate the webhook secret of selected clients", permissions=["change"]
    )
    def rotate_webhook_secret(
        self, request: HttpRequest, queryset: QuerySet[ApiClient]
    ) -> HttpResponse | None:
        return self._rotate(
            request, queryset, "rotate_webhook_secret", "webhook secret", webhook_secret_rotate
        )

    def _rotate(
        self,
        request: HttpRequest,
        queryset: QuerySet[ApiClient],
        action: str,
        what: str,
        rotate: Callable[..., str],
    ) -> HttpResponse:
        """First a page that asks for the grace period, then the page that shows each new
        key or secret: once, and kept nowhere else (not in a message or the session)."""
        clients = list(queryset.order_by("name"))
        form = RotateForm(request.POST if request.POST.get("confirm") == "yes" else None)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Rotate the {what}",
            "opts": self.model._meta,
            "what": what,
            "action": action,
            "clients": clients,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        if form.is_valid():
            grace = timedelta(hours=form.cleaned_data["grace_hours"])
            context["rotated"] = [
                (client, rotate(client=client, grace=grace)) for client in clients
            ]
            context["grace"] = grace
            for client in clients:
                self.log_change(
                    request, client, f"Rotated the {what}; the old one works for {grace}."
                )
        return TemplateResponse(request, "admin/core/apiclient/rotate.html", context)


@admin.register(ClientAPIKey)
class ClientAPIKeyAdmin(APIKeyModelAdmin):
    list_display = (*APIKeyModelAdmin.list_display, "client")
    list_filter = ("client", "revoked")
    list_select_related = ("client",)
