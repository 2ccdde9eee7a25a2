"""StrictSerializer: a field the serializer does not declare is a 400, at any depth, in
the API's error shape; declared fields validate as DRF validates them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from core.serializers import StrictSerializer


class ItemIn(StrictSerializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1)


class AddressIn(StrictSerializer):
    city = serializers.CharField()
    line2 = serializers.CharField(required=False, allow_blank=True)


class BodyIn(StrictSerializer):
    customer_id = serializers.CharField()
    items = ItemIn(many=True)
    address = AddressIn()
    note = serializers.CharField(required=False, default="")


BODY: dict[str, Any] = {
    "customer_id": "C-1",
    "items": [{"sku": "PARA-500", "quantity": 2}],
    "address": {"city": "Pune"},
}


def errors(body: dict[str, Any]) -> Any:
    serializer = BodyIn(data=body)
    assert not serializer.is_valid()
    return serializer.errors


def test_a_plain_body_is_valid_with_drf_conversions_and_defaults():
    serializer = BodyIn(
        data={**BODY, "customer_id": " C-1 ", "items": [{"sku": "X", "quantity": "3"}]}
    )
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data == {
        "customer_id": "C-1",
        "items": [{"sku": "X", "quantity": 3}],
        "address": {"city": "Pune"},
        "note": "",
    }


def test_unknown_fields_are_refused_at_the_top_and_in_nested_serializers():
    assert errors({**BODY, "coupon": "FREE"}) == {"coupon": ["Unknown field."]}
    assert errors({**BODY, "address": {"city": "Pune", "floor": 3}}) == {
        "address": {"floor": ["Unknown field."]}
    }
    items = [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1, "colour": "red"}]
    assert errors({**BODY, "items": items}) == {"items": {1: {"colour": ["Unknown field."]}}}
    assert errors({**BODY, "coupon": 1})["coupon"][0].code == "unknown_field"


def test_a_flood_of_unknown_fields_is_reported_briefly():
    body = {**BODY, **{f"{n:03}{'x' * 150}": 1 for n in range(50)}}
    reported = errors(body)
    assert len(reported) == 20
    assert all(len(name) == 100 for name in reported)


class Echo(APIView):
    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    def post(self, request: Any) -> Response:
        serializer = BodyIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response({"ok": True})


def test_through_a_view_an_unknown_field_is_a_400_in_the_error_shape():
    view = Echo.as_view()
    factory = APIRequestFactory()
    items = [{"sku": "A", "quantity": 1, "colour": "red"}]
    response = view(factory.post("/", {**BODY, "items": items}, format="json"))
    assert response.status_code == 400
    assert response.data["type"] == "validation_error"
    assert [(e["code"], e["attr"]) for e in response.data["errors"]] == [
        ("unknown_field", "items.0.colour")
    ]
    assert view(factory.post("/", BODY, format="json")).status_code == 200
