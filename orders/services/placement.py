"""Order intake: one insert transaction; its `order.received` event starts the pipeline
after commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from core.models import ApiClient
from core.money import to_money
from inventory.models import Product
from inventory.selectors import center_is_active
from orders.enums import EventType, Fulfilment, OnPartial
from orders.models import Order, OrderEvent, OrderLine, OrderNumber
from orders.services.transitions import order_event_record


class IdempotencyKeyReused(Exception):
    """The key was used before by this client with a different body."""


class UnknownSku(Exception):
    def __init__(self, index: int, sku: str) -> None:
        super().__init__(f"unknown or inactive SKU {sku!r}")
        self.index, self.sku = index, sku


class UnknownCenter(Exception):
    """An in-store pickup at a centre that does not exist or is not active."""

    def __init__(self, code: str) -> None:
        super().__init__(f"No active centre {code!r} for pickup.")
        self.code = code


@dataclass(frozen=True)
class ItemRequest:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Placed:
    """An order as `order_place` left it: new (with its lines and its first event, as
    committed) or replayed (read from the database)."""

    order: Order
    replayed: bool
    lines: list[OrderLine] = field(default_factory=list)
    events: list[OrderEvent] = field(default_factory=list)


def _replay(client: ApiClient, key: str, fingerprint: str) -> Placed | None:
    existing = Order.objects.filter(client=client, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(key)
    return Placed(order=existing, replayed=True)


def order_place(
    *,
    client: ApiClient,
    customer_id: str,
    items: list[ItemRequest],
    delivery_address: dict[str, Any] | None,
    payment_method: str,
    payment_token: str,
    prescription_id: uuid.UUID | None,
    idempotency_key: str | None = None,
    fingerprint: str = "",
    request_id: str = "",
    on_partial: str = OnPartial.REJECT,
    pickup_center: str = "",
    contact: dict[str, Any] | None = None,
) -> Placed:
    """Persist a received order; its `order.received` event starts the pipeline after
    commit (orders/receivers.py).

    With an idempotency key already used with the same body, the original order comes
    back, replayed. `on_partial` says what lines failing the prescription rules do: reject
    the order, or drop out of it (`ship_available`). With `pickup_center` (and no
    `delivery_address`) the order is an in-store pickup there, its customer reached
    through `contact` if given. Raises IdempotencyKeyReused, UnknownSku, UnknownCenter."""
    if (delivery_address is None) == (not pickup_center):
        raise ValueError("an order needs exactly one of delivery_address and pickup_center")
    if idempotency_key and (existing := _replay(client, idempotency_key, fingerprint)):
        return existing

    products = {
        p.sku: p for p in Product.objects.filter(sku__in={i.sku for i in items}, active=True)
    }
    for index, item in enumerate(items):
        if item.sku not in products:
            raise UnknownSku(index, item.sku)
    if pickup_center and not center_is_active(code=pickup_center):
        raise UnknownCenter(pickup_center)

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
            number = OrderNumber.objects.create().pk
            order = Order.objects.create(
                number=f"COT-{number:08d}",
                client=client,
                channel=client.channel,
                customer_id=customer_id,
                delivery_address=delivery_address,
                prescription_id=prescription_id,
                payment_method=payment_method,
                payment_token=payment_token,
                total_amount=to_money(sum((line.line_total for line in lines), start=0)),
                on_partial=on_partial,
                fulfilment=Fulfilment.PICKUP if pickup_center else Fulfilment.DELIVERY,
                pickup_center=pickup_center,
                contact=contact,
                idempotency_key=idempotency_key or None,
                request_fingerprint=fingerprint,
                request_id=request_id,
            )
            for line in lines:
                line.order = order
            OrderLine.objects.bulk_create(lines)
            event = order_event_record(order_id=order.pk, type=EventType.ORDER_RECEIVED)
    except IntegrityError:
        # Two requests with one key raced; the loser returns the winner's order.
        if idempotency_key and (existing := _replay(client, idempotency_key, fingerprint)):
            return existing
        raise
    return Placed(order=order, replayed=False, lines=lines, events=[event])
