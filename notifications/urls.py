from django.urls import path

from notifications.api import WebhookDeliveryListApi, WebhookDeliveryResendApi

urlpatterns = [
    path("webhook-deliveries/", WebhookDeliveryListApi.as_view(), name="webhook-delivery-list"),
    path(
        "webhook-deliveries/<int:delivery_id>/resend/",
        WebhookDeliveryResendApi.as_view(),
        name="webhook-delivery-resend",
    ),
]
