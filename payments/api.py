"""The gateways' webhook: late captures, refunds and failures."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.schema import WEBHOOK_SIGNATURE_NOTE
from core.serializers import StrictSerializer
from core.webhooks import SignedWebhookApi
from payments.enums import PaymentStatus
from payments.services import payment_notice_apply
from payments.services.notices import (
    ALREADY_APPLIED,
    APPLIED,
    IGNORED,
    UNKNOWN_REFERENCE,
)

# What a gateway may tell, and what COT made of it (200 whatever it was: a gateway
# retries anything else).
NOTICE_STATUSES = [PaymentStatus.CAPTURED, PaymentStatus.REFUNDED, PaymentStatus.FAILED]
NOTICE_RESULTS = [APPLIED, ALREADY_APPLIED, IGNORED, UNKNOWN_REFERENCE]


class PaymentNoticeIn(StrictSerializer):
    reference = serializers.CharField(max_length=200)
    status = serializers.ChoiceField(choices=NOTICE_STATUSES)
    at = serializers.DateTimeField()


class PaymentNoticeOut(serializers.Serializer):
    result = serializers.ChoiceField(choices=NOTICE_RESULTS)


class PaymentWebhookApi(SignedWebhookApi):
    def secret(self) -> str:
        return settings.PAYMENTS_WEBHOOK_SECRET

    @extend_schema(
        request=PaymentNoticeIn,
        responses={200: PaymentNoticeOut},
        summary="Payment gateway notice (signed with X-COT-Signature)",
        description=WEBHOOK_SIGNATURE_NOTE,
        operation_id="webhooks_payments_notice",
    )
    def post(self, request: Request) -> Response:
        notice = PaymentNoticeIn(data=self.verified_json(request))
        notice.is_valid(raise_exception=True)
        # 200 whatever we made of it (applied, a replay, an unknown reference): a gateway
        # retries anything else forever, and none of those would change on a retry.
        result = payment_notice_apply(**notice.validated_data)
        return Response({"result": result})
