"""Reads of orders, with the access rule: a client sees only its own orders."""

from __future__ import annotations

import datetime
import uuid
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, Prefetch, Q, QuerySet
from django.db.models.functions import TruncMinute

from core.models import ApiClient
from logistics.models import Shipment, ShipmentUpdate
from orders.enums import ENDED, REDRIVABLE, EventType, OrderStatus
from orders.models import Order, OrderEvent, Pickup, Substitution
from payments.models import Payment
from prescriptions.selectors import WaitingOrder


def order_list_for_client(*, client: ApiClient) -> QuerySet[Order]:
    return Order.objects.filter(client=client).prefetch_related(
        "lines", Prefetch("events", queryset=OrderEvent.objects.order_by("pk"))
    )


def order_get_for_client(*, client: ApiClient, order_id: uuid.UUID) -> Order | None:
    return order_list_for_client(client=client).filter(pk=order_id).first()


def order_related(orders: list[Order]) -> dict[str, dict]:
    """Payments and shipments of these orders (they live in other apps), with the
    shipments' items and tracking updates (in the order applied), in four queries; the
    substitutes offered for them (a fifth, when one of them has a prescription); and the
    pickups of in-store pickup orders (a sixth, when one of them is one)."""
    ids = [order.pk for order in orders]
    shipments: dict[uuid.UUID, list[Shipment]] = defaultdict(list)
    updates = Prefetch("updates", queryset=ShipmentUpdate.objects.order_by("pk"))
    for shipment in Shipment.objects.filter(order_id__in=ids).prefetch_related("items", updates):
        shipments[shipment.order_id].append(shipment)
    # Substitutes are offered only for orders waiting on a prescription: the others cost
    # no query.
    substitutions: dict[uuid.UUID, list[Substitution]] = {order.pk: [] for order in orders}
    with_rx = [order.pk for order in orders if order.prescription_id is not None]
    if with_rx:
        for offer in Substitution.objects.filter(order_id__in=with_rx).order_by("created_at", "pk"):
            substitutions[offer.order_id].append(offer)
    pickup_ids = [order.pk for order in orders if order.is_pickup]
    pickups = (
        {p.order_id: p for p in Pickup.objects.filter(order_id__in=pickup_ids)}
        if pickup_ids
        else {}
    )
    return {
        "payments": {p.order_id: p for p in Payment.objects.filter(order_id__in=ids)},
        "shipments": shipments,
        "substitutions": substitutions,
        "pickups": pickups,
    }


def order_count_in_flight() -> int:
    """Orders the pipeline still owes an outcome (on_hold waits for a person, not for us)."""
    return Order.objects.filter(status__in=REDRIVABLE).count()


@dataclass(frozen=True)
class DashboardBucket:
    start: datetime.datetime
    confirmed: int
    failed: int
    other: int


CONFIRMED_OR_LATER = (
    OrderStatus.CONFIRMED,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
    OrderStatus.READY_FOR_PICKUP,
    OrderStatus.COLLECTED,
)


def order_dashboard(
    *, now: datetime.datetime, hours: int = 3, bucket_minutes: int = 10
) -> dict[str, Any]:
    """What the ops dashboard draws: orders placed per bucket by how they stand now,
    failure reasons, and p95 received→confirmed. Grouped in the database by minute, so
    the cost does not grow with the order rate."""
    since = now - datetime.timedelta(hours=hours)
    per_minute = (
        Order.objects.filter(created_at__gte=since)
        .annotate(minute=TruncMinute("created_at"))
        .values("minute", "status")
        .annotate(n=Count("id"))
    )
    buckets = hours * 60 // bucket_minutes
    counts = [{"confirmed": 0, "failed": 0, "other": 0} for _ in range(buckets)]
    for row in per_minute:
        index = int((row["minute"] - since).total_seconds() // (bucket_minutes * 60))
        kind = (
            "confirmed"
            if row["status"] in CONFIRMED_OR_LATER
            else "failed"
            if row["status"] in ENDED
            else "other"
        )
        counts[min(max(index, 0), buckets - 1)][kind] += row["n"]
    reasons = (
        Order.objects.filter(created_at__gte=now - datetime.timedelta(hours=24))
        .exclude(failure_reason=None)
        .values("failure_reason")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    durations = sorted(
        (confirmed - created).total_seconds()
        for created, confirmed in Order.objects.filter(
            confirmed_at__gte=now - datetime.timedelta(hours=1)
        )
        .order_by("-confirmed_at")
        .values_list("created_at", "confirmed_at")[:5000]
    )
    p95 = durations[min(len(durations) - 1, int(len(durations) * 0.95))] if durations else None
    return {
        "buckets": [
            DashboardBucket(
                start=since + datetime.timedelta(minutes=i * bucket_minutes), **counts[i]
            )
            for i in range(buckets)
        ],
        "bucket_minutes": bucket_minutes,
        "failure_reasons": [(r["failure_reason"], r["n"]) for r in reasons],
        "p95_seconds": p95,
        "confirmed_last_hour": len(durations),
        "in_flight": order_count_in_flight(),
    }


def orders_waiting_on_prescriptions(
    *, prescription_ids: Collection[uuid.UUID] | None
) -> list[WaitingOrder]:
    """The orders on hold for a prescription's review, each since its latest
    `order.on_hold` (the pharmacist's review queue, its metrics and the dashboard tile)."""
    held = Order.objects.filter(status=OrderStatus.ON_HOLD, prescription_id__isnull=False)
    if prescription_ids is not None:
        held = held.filter(prescription_id__in=prescription_ids)
    rows = held.annotate(
        held_since=Max("events__at", filter=Q(events__type=EventType.ORDER_ON_HOLD))
    ).values_list("prescription_id", "number", "held_since", "updated_at")
    return [
        WaitingOrder(prescription_id=rx, number=number, held_since=since or updated_at)
        for rx, number, since, updated_at in rows
    ]
