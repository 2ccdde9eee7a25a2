from django.urls import path

from payments.api import PaymentWebhookApi

urlpatterns = [
    path("webhooks/payments/", PaymentWebhookApi.as_view(), name="webhook-payments"),
]
