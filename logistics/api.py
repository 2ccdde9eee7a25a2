"""The logistics partners' tracking webhook."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import Conflict
from core.schema import WEBHOOK_SIGNATURE_NOTE, conflict_response
from core.serializers import StrictSerializer
from core.webhooks import SignedWebhookApi
from logistics.enums import (
    STATUS_ALIASES,
    TRACKING_STATUSES,
    DeliveryFailureReason,
    ShipmentStatus,
)
from logistics.services import shipment_tracking_apply
from logistics.services.tracking import (
    ALREADY_APPLIED,
    APPLIED,
    IGNORED,
    OTP_REQUIRED,
    STALE,
    UNKNOWN_REFERENCE,
)

# What COT made of an update (200 whatever it was: a partner retries anything else).
TRACKING_RESULTS = [APPLIED, ALREADY_APPLIED, STALE, IGNORED, UNKNOWN_REFERENCE]
# What a partner may send as `status` (with the older alias of delivery_failed).
TRACKING_UPDATE_STATUSES = [*map(str, TRACKING_STATUSES), *STATUS_ALIASES]


class TrackingUpdateIn(StrictSerializer):
    awb = serializers.CharField(max_length=64)
    status = serializers.ChoiceField(choices=TRACKING_UPDATE_STATUSES)
    at = serializers.DateTimeField()
    # Which delivery attempt the update is about; without it, the current one.
    attempt = serializers.IntegerField(min_value=1, max_value=100, required=False)
    # Why a delivery failed (only with `delivery_failed`).
    reason = serializers.ChoiceField(
        choices=DeliveryFailureReason.choices, required=False, allow_null=True
    )
    # On `delivered`: the courier checked the customer's delivery OTP (proof of delivery).
    otp_verified = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        status = STATUS_ALIASES.get(attrs["status"], attrs["status"])
        if attrs.get("reason") and status != ShipmentStatus.DELIVERY_FAILED:
            raise serializers.ValidationError(
                {"reason": ["Only a failed delivery (delivery_failed) has a reason."]}
            )
        return attrs


class TrackingUpdateOut(serializers.Serializer):
    result = serializers.ChoiceField(choices=TRACKING_RESULTS)


class LogisticsWebhookApi(SignedWebhookApi):
    def secret(self) -> str:
        return settings.LOGISTICS_WEBHOOK_SECRET

    @extend_schema(
        request=TrackingUpdateIn,
        responses={
            200: TrackingUpdateOut,
            409: conflict_response("webhooks_logistics_tracking", OTP_REQUIRED),
        },
        summary="Logistics partner tracking update (signed with X-COT-Signature)",
        description=WEBHOOK_SIGNATURE_NOTE + " 409 `otp_required`: a parcel that needs the "
        "customer's delivery OTP was reported delivered without `otp_verified: true`; "
        "nothing changed.",
        operation_id="webhooks_logistics_tracking",
    )
    def post(self, request: Request) -> Response:
        update = TrackingUpdateIn(data=self.verified_json(request))
        update.is_valid(raise_exception=True)
        # 200 whatever we made of it (applied, a replay, stale, an unknown AWB): a partner
        # retries anything else forever, and none of those would change on a retry. A
        # delivery without the customer's OTP is the exception: the partner must hear it
        # was not accepted (the parcel may be in the wrong hands).
        result = shipment_tracking_apply(**update.validated_data)
        if result == OTP_REQUIRED:
            raise Conflict(
                "This shipment is delivered only against the customer's OTP: "
                "send otp_verified: true once the courier has checked it.",
                code="otp_required",
            )
        return Response({"result": result})
