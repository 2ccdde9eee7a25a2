"""Staff API: the current replenishment rows, most urgent first (inventory role)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from rest_framework import permissions, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.schema import cursor_page
from forecasting import selectors
from forecasting.enums import DemandPattern, ReplenishmentStatus
from forecasting.models import Replenishment
from inventory.enums import Schedule
from inventory.selectors import center_exists


class CanViewReplenishment(permissions.BasePermission):
    message = "Only staff with the inventory role may see replenishment."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user
            and getattr(user, "is_staff", False)
            and user.has_perm("forecasting.view_replenishment")
        )


class ReplenishmentListIn(serializers.Serializer):
    """Query parameters (pagination's `cursor` and `page_size` are the paginator's)."""

    center = serializers.CharField(
        required=False, max_length=20, help_text="Only this centre's rows (its code)."
    )

    def validate_center(self, code: str) -> str:
        if not center_exists(code=code):
            raise serializers.ValidationError("No such centre.", code="unknown_center")
        return code


class TransferOut(serializers.Serializer):
    batch = serializers.CharField()
    expires_on = serializers.DateField()
    quantity = serializers.IntegerField(min_value=1)
    to_center = serializers.CharField(help_text="The centre whose forecast sells them in time.")


class ForecastOut(serializers.Serializer):
    """Units per day from `as_of`, one value per day of the horizon."""

    mean = serializers.ListField(child=serializers.FloatField())
    lo80 = serializers.ListField(child=serializers.FloatField())
    hi80 = serializers.ListField(child=serializers.FloatField())
    lo95 = serializers.ListField(child=serializers.FloatField())
    hi95 = serializers.ListField(child=serializers.FloatField())


class ReplenishmentOut(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    name = serializers.CharField(source="product.name")
    schedule = serializers.ChoiceField(choices=Schedule.choices, source="product.schedule")
    center = serializers.CharField(source="center.code")
    status = serializers.ChoiceField(choices=ReplenishmentStatus.choices)
    as_of = serializers.DateField(source="run.as_of", help_text="The forecast's first day.")
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    expiring_units = serializers.IntegerField(
        help_text="Free units of batches that pass the shelf-life floor within the horizon."
    )
    at_risk_units = serializers.IntegerField(
        help_text="Of those, the units the forecast does not sell here before the floor."
    )
    sellable_units = serializers.IntegerField(help_text="On hand − reserved − at risk.")
    daily_demand = serializers.FloatField(help_text="Mean forecast units per day.")
    days_of_cover = serializers.FloatField(
        allow_null=True, help_text="Sellable units / daily demand; null without demand."
    )
    lead_time_days = serializers.IntegerField()
    review_period_days = serializers.IntegerField()
    service_level = serializers.FloatField()
    order_up_to = serializers.IntegerField(allow_null=True)
    suggested_quantity = serializers.IntegerField(help_text="Order-up-to less sellable units.")
    transfers = TransferOut(many=True)
    pattern = serializers.ChoiceField(choices=DemandPattern.choices)
    model = serializers.CharField(help_text="The forecasting model; empty without demand.")
    mase = serializers.FloatField(
        allow_null=True,
        help_text="Backtest error relative to the 7-day seasonal naive forecast (below 1: "
        "better); null when there is too little history or nothing to compare.",
    )
    forecast = serializers.SerializerMethodField()

    @extend_schema_field(ForecastOut(allow_null=True))
    def get_forecast(self, row: Replenishment) -> dict[str, list[float]] | None:
        return row.forecast or None


ReplenishmentPage = cursor_page(ReplenishmentOut, "ReplenishmentPage")


class ReplenishmentPagination(CursorPagination):
    ordering = ("urgency", "pk")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


@extend_validation_errors(["unknown_center"], field_name="center")
class ReplenishmentListApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanViewReplenishment]

    @extend_schema(
        responses={200: ReplenishmentPage},
        parameters=[ReplenishmentListIn],
        summary="Replenishment per SKU and centre, most urgent first (inventory staff)",
        operation_id="inventory_replenishment_list",
    )
    def get(self, request: Request) -> Response:
        query = ReplenishmentListIn(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        rows = selectors.replenishment_current(center=query.validated_data.get("center", ""))
        paginator = ReplenishmentPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(ReplenishmentOut(page, many=True).data)
