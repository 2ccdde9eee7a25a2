"""The prescription API: clients upload prescriptions and read them back, pharmacists
approve or reject them. The SKUs a prescription names must exist in the catalog."""

from __future__ import annotations

import datetime
import json
import re
import uuid
from typing import Any

import filetype
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from rest_framework import exceptions, parsers, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import Conflict
from core.models import ApiClient
from core.parsers import TextJSONParser, json_text_check
from core.permissions import IsApiClient
from core.schema import conflict_response
from core.serializers import StrictSerializer
from inventory.selectors import product_skus_known
from prescriptions.enums import LineDecision, LineRejection, PrescriptionStatus
from prescriptions.models import Prescription, PrescriptionItem
from prescriptions.selectors import prescription_get_for_client
from prescriptions.services import (
    PARTIAL,
    SUBSTITUTE,
    AlreadyReviewed,
    InvalidSubstitute,
    LineReview,
    RxItemRequest,
    UnknownLine,
    prescription_create,
    prescription_review,
)

MAX_IMAGE_BYTES = 5 * 1024 * 1024
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "application/pdf"})
# Indian medical council registration numbers: a council prefix and a number, with the
# separators councils print ("KMC-12345", "MCI/2010/12345", "DMC R 12345", "123456").
REGISTRATION_NO = re.compile(r"^(?=(?:[^0-9]*[0-9]){3})[A-Z0-9][A-Z0-9/ .-]{2,29}$")


class RxItemIn(StrictSerializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=1000)


class PrescriptionCreateIn(StrictSerializer):
    customer_id = serializers.CharField(max_length=64)
    patient_name = serializers.CharField(max_length=200)
    doctor_name = serializers.CharField(max_length=200)
    doctor_registration_no = serializers.CharField(max_length=30)
    issued_on = serializers.DateField()
    items = serializers.ListField(child=RxItemIn(), min_length=1, max_length=50)
    image = serializers.FileField(required=False, allow_empty_file=False)
    # How many orders may draw on it; absent or null: as many as its quantities cover.
    max_dispenses = serializers.IntegerField(
        min_value=1, max_value=1000, required=False, allow_null=True, default=None
    )

    def validate_doctor_registration_no(self, value: str) -> str:
        value = value.upper()
        if not REGISTRATION_NO.match(value):
            raise serializers.ValidationError(
                "A council registration number such as KMC-12345 or MCI/2010/12345."
            )
        return value

    def validate_issued_on(self, value: datetime.date) -> datetime.date:
        if value > timezone.localdate():
            raise serializers.ValidationError("A prescription cannot be issued in the future.")
        return value

    def validate_items(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        skus = [item["sku"] for item in items]
        known = product_skus_known(skus=skus)
        errors: dict[int, dict[str, list[serializers.ErrorDetail]]] = {}
        for index, sku in enumerate(skus):
            if sku not in known:
                errors[index] = {"sku": [serializers.ErrorDetail("Unknown SKU.", "unknown_sku")]}
            elif sku in skus[:index]:
                errors[index] = {"sku": [serializers.ErrorDetail("Duplicate SKU.", "duplicate")]}
        if errors:
            raise serializers.ValidationError(errors)
        return items

    def validate_image(self, image: Any) -> Any:
        if image.size > MAX_IMAGE_BYTES:
            raise serializers.ValidationError("The image is larger than 5 MiB.", "too_large")
        # Decided by the file's content, never by its name or declared type.
        kind = filetype.guess_mime(image.read(2048))
        image.seek(0)
        if kind not in IMAGE_TYPES:
            raise serializers.ValidationError(
                "Only JPEG, PNG or PDF files are accepted.", "unsupported_file_type"
            )
        return image


class PrescriptionCreateJsonIn(PrescriptionCreateIn):
    """The JSON body (schema only): an image travels in a multipart form."""

    image = None


# A line's decision in a review, and the review's own (named: schema enums).
REVIEW_LINE_DECISIONS = [LineDecision.APPROVED, LineDecision.REJECTED, SUBSTITUTE]
REVIEW_DECISIONS = [PrescriptionStatus.APPROVED, PrescriptionStatus.REJECTED, PARTIAL]


class ReviewLineIn(StrictSerializer):
    sku = serializers.CharField(max_length=64)
    decision = serializers.ChoiceField(choices=REVIEW_LINE_DECISIONS)
    reason = serializers.ChoiceField(
        choices=LineRejection.choices, required=False, allow_blank=True, default=""
    )
    # `substitute` only: the product offered instead, for this order's line.
    substitute_sku = serializers.CharField(max_length=64, required=False, default="")
    order_id = serializers.UUIDField(required=False, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["decision"] == LineDecision.REJECTED and not attrs["reason"]:
            raise serializers.ValidationError({"reason": ["Say why the line is rejected."]})
        if attrs["decision"] == SUBSTITUTE and not (attrs["substitute_sku"] and attrs["order_id"]):
            raise serializers.ValidationError(
                "A substitute names substitute_sku and order_id.", code="invalid_substitute"
            )
        return attrs


class ReviewIn(StrictSerializer):
    decision = serializers.ChoiceField(choices=REVIEW_DECISIONS)
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    # Per line; required for `partial` (unlisted lines are approved).
    lines = serializers.ListField(
        child=ReviewLineIn(), required=False, max_length=100, default=list
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        lines = attrs["lines"]
        if attrs["decision"] == PARTIAL and not lines:
            raise serializers.ValidationError({"lines": ["A partial review decides lines."]})
        if len({line["sku"] for line in lines}) != len(lines):
            raise serializers.ValidationError({"lines": ["Each SKU once."]})
        wrong = [
            line["sku"]
            for line in lines
            if attrs["decision"] != PARTIAL
            # A substitute offer approves the prescription's line.
            and {SUBSTITUTE: LineDecision.APPROVED}.get(line["decision"], line["decision"])
            != attrs["decision"]
        ]
        if wrong:
            raise serializers.ValidationError(
                {"lines": [f"A {attrs['decision']} review cannot decide {wrong[0]} otherwise."]}
            )
        return attrs


# A reviewed line's decision (null until reviewed).
RX_LINE_DECISIONS = [LineDecision.APPROVED, LineDecision.REJECTED]


class RxItemOut(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField()
    dispensed_quantity = serializers.IntegerField()
    # The pharmacist's word on the line: null until reviewed.
    decision = serializers.SerializerMethodField()
    rejection_reason = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ChoiceField(choices=RX_LINE_DECISIONS, allow_null=True))
    def get_decision(self, item: PrescriptionItem) -> str | None:
        return item.decision or None

    @extend_schema_field(serializers.ChoiceField(choices=LineRejection.choices, allow_null=True))
    def get_rejection_reason(self, item: PrescriptionItem) -> str | None:
        return item.rejection_reason or None


class ReviewOut(serializers.Serializer):
    decision = serializers.ChoiceField(choices=PrescriptionStatus.choices, source="status")
    note = serializers.CharField(source="review_note")
    reviewed_at = serializers.DateTimeField(default_timezone=datetime.UTC)


class PrescriptionOut(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=PrescriptionStatus.choices)
    customer_id = serializers.CharField()
    patient_name = serializers.CharField()
    doctor_name = serializers.CharField()
    doctor_registration_no = serializers.CharField()
    issued_on = serializers.DateField()
    items = RxItemOut(many=True)
    max_dispenses = serializers.IntegerField(allow_null=True)
    has_image = serializers.SerializerMethodField()
    review = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(default_timezone=datetime.UTC)

    def get_has_image(self, prescription: Prescription) -> bool:
        return bool(prescription.image)

    @extend_schema_field(ReviewOut(allow_null=True))
    def get_review(self, prescription: Prescription) -> dict[str, Any] | None:
        if prescription.status == PrescriptionStatus.PENDING_REVIEW or not prescription.reviewed_at:
            return None
        return ReviewOut(prescription).data


def _multipart_items(data: Any) -> Any:
    """In multipart forms `items` travels as a JSON string."""
    if hasattr(data, "getlist"):
        plain = {key: data.get(key) for key in data}
        if isinstance(plain.get("items"), str):
            try:
                plain["items"] = json_text_check(json.loads(plain["items"]))
            except (ValueError, RecursionError, exceptions.ParseError):
                raise serializers.ValidationError(
                    {"items": ["Must be a JSON list of {sku, quantity} in a multipart form."]}
                ) from None
        return plain
    return data


@extend_validation_errors(["unknown_sku", "duplicate"], field_name="items.INDEX.sku")
@extend_validation_errors(["too_large", "unsupported_file_type"], field_name="image")
class PrescriptionCreateApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApiClient]
    parser_classes = [TextJSONParser, parsers.MultiPartParser]

    @extend_schema(
        # In the multipart form `items` is a JSON text, as OpenAPI sends an array there.
        request={
            "application/json": PrescriptionCreateJsonIn,
            "multipart/form-data": PrescriptionCreateIn,
        },
        responses={201: PrescriptionOut},
        parameters=[
            OpenApiParameter(
                "Location",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                response=[201],
                required=True,
                description="The prescription's URL.",
            )
        ],
        summary="Upload a prescription (JSON, or multipart with an image)",
        operation_id="prescriptions_create",
    )
    def post(self, request: Request) -> Response:
        client: ApiClient = request.user
        data = _multipart_items(request.data)
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        payload = PrescriptionCreateIn(data=data)
        payload.is_valid(raise_exception=True)
        values = payload.validated_data
        prescription = prescription_create(
            client=client,
            customer_id=values["customer_id"],
            patient_name=values["patient_name"],
            doctor_name=values["doctor_name"],
            doctor_registration_no=values["doctor_registration_no"],
            issued_on=values["issued_on"],
            items=[RxItemRequest(sku=i["sku"], quantity=i["quantity"]) for i in values["items"]],
            image=values.get("image"),
            max_dispenses=values["max_dispenses"],
        )
        return Response(
            PrescriptionOut(prescription).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/prescriptions/{prescription.pk}/"},
        )


class PrescriptionDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApiClient]

    @extend_schema(
        responses={200: PrescriptionOut},
        summary="Get one prescription",
        operation_id="prescriptions_get",
    )
    def get(self, request: Request, prescription_id: uuid.UUID) -> Response:
        prescription = prescription_get_for_client(
            client=request.user, prescription_id=prescription_id
        )
        if prescription is None:
            raise exceptions.NotFound("No such prescription.")
        return Response(PrescriptionOut(prescription).data)


class CanReviewPrescriptions(permissions.BasePermission):
    message = "Only pharmacists may review prescriptions."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user
            and getattr(user, "is_staff", False)
            and user.has_perm("prescriptions.review_prescription")
        )


@extend_validation_errors(["unknown_line", "invalid_substitute"], field_name="lines")
class PrescriptionReviewApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReviewPrescriptions]

    @extend_schema(
        request=ReviewIn,
        responses={
            200: PrescriptionOut,
            409: conflict_response("prescriptions_review", "already_reviewed"),
        },
        summary="Approve or reject a prescription (pharmacists)",
        operation_id="prescriptions_review",
    )
    def post(self, request: Request, prescription_id: uuid.UUID) -> Response:
        payload = ReviewIn(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            prescription = prescription_review(
                prescription_id=prescription_id,
                reviewer=request.user,
                decision=payload.validated_data["decision"],
                note=payload.validated_data["note"],
                lines=[
                    LineReview(
                        sku=line["sku"],
                        decision=line["decision"],
                        reason=line["reason"],
                        substitute_sku=line["substitute_sku"],
                        order_id=line["order_id"],
                    )
                    for line in payload.validated_data["lines"]
                ],
            )
        except Prescription.DoesNotExist:
            raise exceptions.NotFound("No such prescription.") from None
        except UnknownLine as exc:
            raise serializers.ValidationError(
                {"lines": [serializers.ErrorDetail(str(exc), code="unknown_line")]}
            ) from None
        except InvalidSubstitute as exc:
            raise serializers.ValidationError(
                {"lines": [serializers.ErrorDetail(str(exc), code="invalid_substitute")]}
            ) from None
        except AlreadyReviewed:
            raise Conflict(
                "This prescription was already reviewed.", code="already_reviewed"
            ) from None
        return Response(PrescriptionOut(prescription).data)
