from django.urls import path

from orders.api import OrderCancelApi, OrderDetailApi, OrderListCreateApi
from orders.prescription_api import (
    PrescriptionCreateApi,
    PrescriptionDetailApi,
    PrescriptionReviewApi,
)

urlpatterns = [
    path("orders/", OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<uuid:order_id>/", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<uuid:order_id>/cancel/", OrderCancelApi.as_view(), name="order-cancel"),
    path("prescriptions/", PrescriptionCreateApi.as_view(), name="prescription-create"),
    path(
        "prescriptions/<uuid:prescription_id>/",
        PrescriptionDetailApi.as_view(),
        name="prescription-detail",
    ),
    path(
        "prescriptions/<uuid:prescription_id>/review/",
        PrescriptionReviewApi.as_view(),
        name="prescription-review",
    ),
]
