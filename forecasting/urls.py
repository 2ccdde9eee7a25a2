from django.urls import path

from forecasting.api import ReplenishmentListApi

urlpatterns = [
    path("inventory/replenishment/", ReplenishmentListApi.as_view(), name="replenishment-list"),
]
