from django.urls import path

from orders.api import OrderDetailApi, OrderListCreateApi

urlpatterns = [
    path("orders/", OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<uuid:order_id>/", OrderDetailApi.as_view(), name="order-detail"),
]
