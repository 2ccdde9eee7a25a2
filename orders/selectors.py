"""Reads of orders, with the access rule: a client sees only its own orders."""

from __future__ import annotations

import uuid
from collections import defaultdict

from django.db.models import Prefetch, QuerySet

from core.models import ApiClient
from logistics.models import Shipment
from orders.enums import OrderStatus
from orders.models import Order, OrderEvent
from payments.models import Payment


def order_list_for_client(*, client: ApiClient) -> QuerySet[Order]:
    return Order.objects.filter(client=client).prefetch_related(
        "lines", Prefetch("events", queryset=OrderEvent.objects.order_by("pk"))
    )


def order_get_for_client(*, client: ApiClient, order_id: uuid.UUID) -> Order | None:
    return order_list_for_client(client=client).filter(pk=order_id).first()


def order_related(orders: list[Order]) -> dict[str, dict]:
    """Payments and shipments of these orders in two queries (they live in other apps)."""
    ids = [order.pk for order in orders]
    shipments: dict[uuid.UUID, list[Shipment]] = defaultdict(list)
    for shipment in Shipment.objects.filter(order_id__in=ids).prefetch_related("items"):
        shipments[shipment.order_id].append(shipment)
    return {
        "payments": {p.order_id: p for p in Payment.objects.filter(order_id__in=ids)},
        "shipments": shipments,
    }


IN_FLIGHT_STATUSES = (OrderStatus.RECEIVED, OrderStatus.PROCESSING)


def order_count_in_flight() -> int:
    """Orders the pipeline still owes an outcome (on_hold waits for a person, not for us)."""
    return Order.objects.filter(status__in=IN_FLIGHT_STATUSES).count()
