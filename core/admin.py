from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from core.models import ApiClient, ClientAPIKey

# The library's own key model is unused: keys belong to clients (ClientAPIKey).
admin.site.unregister(APIKey)


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "channel",
        "active",
        "orders_per_second",
        "requests_per_second",
        "webhook_url",
        "created_at",
    )
    list_filter = ("channel", "active")
    search_fields = ("name",)
    readonly_fields = ("webhook_secret", "created_at", "updated_at")


@admin.register(ClientAPIKey)
class ClientAPIKeyAdmin(APIKeyModelAdmin):
    list_display = (*APIKeyModelAdmin.list_display, "client")
    list_filter = ("client", "revoked")
    list_select_related = ("client",)
