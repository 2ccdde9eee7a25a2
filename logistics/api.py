"""The logistics partners' tracking webhook."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.serializers import StrictSerializer
from core.webhooks import SignedWebhookApi
from logistics.enums import TRACKING_STATUSES
from logistics.services import shipment_tracking_apply


class TrackingUpdateIn(StrictSerializer):
    awb = serializers.CharField(max_length=64)
    status = serializers.ChoiceField(choices=[str(s) for s in TRACKING_STATUSES])
    at = serializers.DateTimeField()


class LogisticsWebhookApi(SignedWebhookApi):
    def secret(self) -> str:
        return settings.LOGISTICS_WEBHOOK_SECRET

    @extend_schema(
        request=TrackingUpdateIn,
        responses={200: OpenApiTypes.OBJECT},
        summary="Logistics partner tracking update (signed with X-COT-Signature)",
    )
    def post(self, request: Request) -> Response:
        update = TrackingUpdateIn(data=self.verified_json(request))
        update.is_valid(raise_exception=True)
        # 200 whatever we made of it (applied, a replay, stale, an unknown AWB): a partner
        # retries anything else forever, and none of those would change on a retry.
        result = shipment_tracking_apply(**update.validated_data)
        return Response({"result": result})
