from django.urls import path

from orders.api import (
    OrderCancelApi,
    OrderCollectApi,
    OrderDetailApi,
    OrderListCreateApi,
    OrderPaymentRetryApi,
    OrderReturnsApi,
    SubstitutionAnswerApi,
)

urlpatterns = [
    path("orders/", OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<uuid:order_id>/", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<uuid:order_id>/cancel/", OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<uuid:order_id>/collect/", OrderCollectApi.as_view(), name="order-collect"),
    path("orders/<uuid:order_id>/returns/", OrderReturnsApi.as_view(), name="order-returns"),
    path(
        "orders/<uuid:order_id>/payment/",
        OrderPaymentRetryApi.as_view(),
        name="order-payment-retry",
    ),
    path(
        "orders/<uuid:order_id>/substitutions/<uuid:substitution_id>/<str:answer>/",
        SubstitutionAnswerApi.as_view(),
        name="order-substitution-answer",
    ),
]
