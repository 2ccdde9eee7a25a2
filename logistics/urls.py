from django.urls import path

from logistics.api import LogisticsWebhookApi

urlpatterns = [
    path("webhooks/logistics/", LogisticsWebhookApi.as_view(), name="webhook-logistics"),
]
