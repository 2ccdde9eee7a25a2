"""The product catalogue for channel clients: what can be ordered, at what price, and how
many units an order to a given pincode could get now."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import IsApiClient
from core.schema import cursor_page
from inventory import selectors
from inventory.enums import Schedule
from inventory.models import Product

PINCODE = RegexValidator(r"^[1-9][0-9]{5}$", "A pincode is six digits, the first not 0.", "invalid")


class ProductListIn(serializers.Serializer):
    """Query parameters (pagination's `cursor` and `page_size` are the paginator's)."""

    search = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Part of the SKU or name."
    )
    sku = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text="Exactly this SKU."
    )
    pincode = serializers.CharField(
        required=False,
        validators=[PINCODE],
        help_text="The delivery pincode; without it `available_quantity` is null.",
    )


class ProductOut(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2)
    currency = serializers.SerializerMethodField()
    schedule = serializers.ChoiceField(choices=Schedule.choices)
    requires_prescription = serializers.BooleanField()
    # Products of one composition may substitute for each other (with consent).
    composition = serializers.CharField()
    manufacturer = serializers.CharField()
    available_quantity = serializers.SerializerMethodField()

    def get_currency(self, product: Product) -> str:
        return "INR"

    def get_available_quantity(self, product: Product) -> int | None:
        available = self.context["available"]
        return None if available is None else available[product.pk]


ProductPage = cursor_page(ProductOut, "ProductPage")


class ProductPagination(CursorPagination):
    ordering = ("sku",)
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class ProductListApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApiClient]

    @extend_schema(
        responses={200: ProductPage},
        parameters=[ProductListIn],
        summary="List active products with price and availability for a pincode",
        operation_id="products_list",
    )
    def get(self, request: Request) -> Response:
        query = ProductListIn(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params: dict[str, Any] = query.validated_data
        products = selectors.product_list(
            search=params.get("search", ""), sku=params.get("sku", "")
        )
        paginator = ProductPagination()
        page = list(paginator.paginate_queryset(products, request, view=self))
        available = None
        if "pincode" in params:
            available = selectors.product_available(
                product_ids=[p.pk for p in page], pincode=params["pincode"]
            )
        data = ProductOut(page, many=True, context={"available": available}).data
        return paginator.get_paginated_response(data)
