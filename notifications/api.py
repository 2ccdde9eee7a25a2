"""The client's view of its outbound webhooks: its deliveries, and a resend."""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, permissions, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.models import ApiClient
from core.permissions import IsApiClient
from notifications import selectors
from notifications.filters import WebhookDeliveryFilter
from notifications.serializers import (
    WebhookDeliveryListQueryIn,
    WebhookDeliveryOut,
    WebhookDeliveryPageOut,
    WebhookDeliveryResendIn,
)
from notifications.services.webhooks import webhook_deliveries_resend
from notifications.tasks import webhook_pump

logger = logging.getLogger(__name__)


class WebhookDeliveryPagination(CursorPagination):
    ordering = ("-id",)
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class WebhookDeliveryListApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApiClient]

    @extend_schema(
        responses={200: WebhookDeliveryPageOut},
        parameters=[WebhookDeliveryListQueryIn],
        summary="List the client's webhook deliveries, newest first",
        operation_id="webhook_deliveries_list",
    )
    def get(self, request: Request) -> Response:
        queryset = selectors.webhook_delivery_list_for_client(client=request.user)
        filterset = WebhookDeliveryFilter(request.query_params, queryset=queryset)
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        paginator = WebhookDeliveryPagination()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response(WebhookDeliveryOut(page, many=True).data)


class WebhookDeliveryResendApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApiClient]

    @extend_schema(
        request=WebhookDeliveryResendIn,
        responses={200: WebhookDeliveryOut},
        summary="Send a delivered or failed webhook delivery again",
        description="Puts the delivery back in line with a fresh retry window; it goes "
        "out before the order's later events that are still pending. A delivery that is "
        "`pending` is on its way already and is left as it is (200, nothing changes). "
        "Another client's delivery: 404. Returns the delivery.",
        operation_id="webhook_deliveries_resend",
    )
    def post(self, request: Request, delivery_id: int) -> Response:
        client: ApiClient = request.user
        if not isinstance(request.data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        WebhookDeliveryResendIn(data=request.data).is_valid(raise_exception=True)
        delivery = selectors.webhook_delivery_get_for_client(client=client, delivery_id=delivery_id)
        if delivery is None:
            raise exceptions.NotFound("No such webhook delivery.")
        orders = webhook_deliveries_resend(deliveries=[delivery])
        delivery.refresh_from_db()
        # The answer shows the delivery as resent, before a worker can have sent it.
        body = WebhookDeliveryOut(delivery).data
        if orders:
            logger.info("webhook delivery %s resent by client %s", delivery.pk, client.name)
        for order_id in orders:
            transaction.on_commit(lambda order_id=order_id: _pump(order_id))
        return Response(body)


def _pump(order_id: uuid.UUID) -> None:
    # A broker that is down only delays the resend: the delivery is pending and due, and
    # the sweeper pumps its order.
    try:
        webhook_pump.delay(str(order_id))
    except Exception:
        logger.exception("could not enqueue the webhook pump for order %s", order_id)
