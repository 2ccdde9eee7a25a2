"""The gateways' webhook: late captures, refunds and failures."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.serializers import StrictSerializer
from core.webhooks import SignedWebhookApi
from payments.enums import PaymentStatus
from payments.services import payment_notice_apply


class PaymentNoticeIn(StrictSerializer):
    reference = serializers.CharField(max_length=200)
    status = serializers.ChoiceField(
        choices=[PaymentStatus.CAPTURED, PaymentStatus.REFUNDED, PaymentStatus.FAILED]
    )
    at = serializers.DateTimeField()


class PaymentWebhookApi(SignedWebhookApi):
    def secret(self) -> str:
        return settings.PAYMENTS_WEBHOOK_SECRET

    @extend_schema(
        request=PaymentNoticeIn,
        responses={200: OpenApiTypes.OBJECT},
        summary="Payment gateway notice (signed with X-COT-Signature)",
    )
    def post(self, request: Request) -> Response:
        notice = PaymentNoticeIn(data=self.verified_json(request))
        notice.is_valid(raise_exception=True)
        # 200 whatever we made of it (applied, a replay, an unknown reference): a gateway
        # retries anything else forever, and none of those would change on a retry.
        result = payment_notice_apply(**notice.validated_data)
        return Response({"result": result})
