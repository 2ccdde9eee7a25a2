"""Order intake: one insert transaction, then the pipeline starts after commit."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from core import faults
from core.models import ApiClient
from core.money import to_money
from core.prepared import Bind, Prepared, PreparedInsert
from inventory.models import Product
from orders.enums import EventType
from orders.models import Order, OrderLine
from orders.services.transitions import order_event_record

logger = logging.getLogger(__name__)


class IdempotencyKeyReused(Exception):
    """The key was used before by this client with a different body."""


class UnknownSku(Exception):
    def __init__(self, index: int, sku: str) -> None:
        super().__init__(f"unknown or inactive SKU {sku!r}")
        self.index, self.sku = index, sku


@dataclass(frozen=True)
class ItemRequest:
    sku: str
    quantity: int


# Compiled once per process (core.prepared): intake runs these for every request.
_BY_KEY = Prepared(
    lambda: Order.objects.filter(
        client_id=Bind("client_id", ApiClient._meta.pk),
        idempotency_key=Bind("key", Order._meta.get_field("idempotency_key")),
    )
)
# One statement per number of distinct SKUs (at most the serializer's 50 items).
_products: dict[int, Prepared] = {}


def _products_by_sku(skus: list[str]) -> dict[str, Product]:
    statement = _products.get(len(skus))
    if statement is None:
        sku = Product._meta.get_field("sku")
        binds = [Bind(f"sku{n}", sku) for n in range(len(skus))]
        statement = _products[len(skus)] = Prepared(
            lambda: Product.objects.filter(sku__in=binds, active=True)
        )
    found = statement.all(**{f"sku{n}": value for n, value in enumerate(skus)})
    return {p.sku: p for p in found}


_ORDER_INSERT = PreparedInsert(Order)
_LINES_INSERT = PreparedInsert(OrderLine)
_NUMBER_SQL = "INSERT INTO orders_ordernumber DEFAULT VALUES RETURNING id"


def _replay(client: ApiClient, key: str, fingerprint: str) -> Order | None:
    existing = _BY_KEY.first(client_id=client.pk, key=key)
    if existing is not None and existing.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(key)
    return existing


def _pipeline_start(order_id: uuid.UUID) -> None:
    """Ring the doorbell. The order is committed: if the broker cannot be reached the
    order is still accepted, and the sweeper starts it after COT_STUCK_ORDER_SECONDS."""
    # Imported here: the pipeline module imports the tasks, which import services.
    from orders import pipeline

    try:
        pipeline.start(order_id)
    except Exception as exc:
        if not _redis_unreachable(exc):
            raise
        logger.warning("broker unreachable: order %s is left to the sweeper", order_id)


def _redis_unreachable(exc: BaseException | None) -> bool:
    # Celery's result backend wraps the Redis error in a RuntimeError when it gives up
    # reconnecting (a chord subscribes to its results while being sent).
    while exc is not None:
        if isinstance(exc, KombuOperationalError | RedisError):
            return True
        exc = exc.__cause__
    return False


def order_place(
    *,
    client: ApiClient,
    customer_id: str,
    items: list[ItemRequest],
    delivery_address: dict[str, Any],
    payment_method: str,
    payment_token: str,
    prescription_id: uuid.UUID | None,
    idempotency_key: str | None = None,
    fingerprint: str = "",
    request_id: str = "",
) -> tuple[Order, bool]:
    """Persist a received order and hand it to the pipeline after commit.

    Returns (order, replayed): with an idempotency key already used with the same body,
    the original order and True. A new order comes with its lines and its timeline as
    committed (prefetched), so the API can answer without reading them back;
    `refresh_from_db()` drops them. Raises IdempotencyKeyReused, UnknownSku."""
    if idempotency_key and (existing := _replay(client, idempotency_key, fingerprint)):
        return existing, True

    products = _products_by_sku(list(dict.fromkeys(i.sku for i in items)))
    for index, item in enumerate(items):
        if item.sku not in products:
            raise UnknownSku(index, item.sku)

    lines = []
    for item in items:
        product = products[item.sku]
        lines.append(
            OrderLine(
                sku=product.sku,
                name=product.name,
                schedule=product.schedule,
                quantity=item.quantity,
                unit_price=product.price,
                line_total=to_money(product.price * item.quantity),
                requires_prescription=product.requires_prescription,
            )
        )
    try:
        with transaction.atomic():
            with transaction.get_connection().cursor() as cursor:
                cursor.execute(_NUMBER_SQL)
                [(number,)] = cursor.fetchall()
            order = Order(
                number=f"COT-{number:08d}",
                client=client,
                channel=client.channel,
                customer_id=customer_id,
                delivery_address=delivery_address,
                prescription_id=prescription_id,
                payment_method=payment_method,
                payment_token=payment_token,
                total_amount=to_money(sum((line.line_total for line in lines), start=0)),
                idempotency_key=idempotency_key or None,
                request_fingerprint=fingerprint,
                request_id=request_id,
            )
            _ORDER_INSERT.insert([order])
            for line in lines:
                line.order = order
            _LINES_INSERT.insert(lines)
            event = order_event_record(order_id=order.pk, type=EventType.ORDER_RECEIVED)
            # Test-only: as if the API server died between this commit and the enqueue.
            if not faults.fault_active(faults.AFTER_COMMIT_BEFORE_ENQUEUE):
                transaction.on_commit(lambda: _pipeline_start(order.pk))
    except IntegrityError:
        # Two requests with one key raced; the loser returns the winner's order.
        if idempotency_key and (existing := _replay(client, idempotency_key, fingerprint)):
            return existing, True
        raise
    _prefetched(order, "lines", lines)
    _prefetched(order, "events", [event])
    return order, False


def _prefetched(order: Order, name: str, objects: list[Any]) -> None:
    """What `prefetch_related(name)` would have left on `order`, from objects in hand."""
    queryset = getattr(order, name).get_queryset()
    queryset._result_cache = objects
    queryset._prefetch_done = True
    order._prefetched_objects_cache = {
        **getattr(order, "_prefetched_objects_cache", {}),
        name: queryset,
    }
