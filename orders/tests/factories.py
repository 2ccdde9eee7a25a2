"""Orders are made the way the API makes them: through `order_place`."""

from __future__ import annotations

from typing import Any

from core.models import ApiClient
from orders.models import Order
from orders.services.placement import ItemRequest, order_place

ADDRESS = {
    "name": "A. Rao",
    "line1": "12 MG Road",
    "line2": "",
    "city": "Bengaluru",
    "state": "KA",
    "pincode": "560001",
    "phone": "+919800000001",
}

# The example request body of docs/API.md.
ORDER_BODY = {
    "customer_id": "C-1001",
    "items": [{"sku": "PARA-500", "quantity": 2}],
    "prescription_id": None,
    "delivery_address": ADDRESS,
    "payment_method": "upi",
    "payment_token": "tok_ok",
}


def place_order(client: ApiClient, *, items: list[tuple[str, int]], **overrides: Any) -> Order:
    arguments: dict[str, Any] = {
        "customer_id": "C-1001",
        "delivery_address": dict(ADDRESS),
        "payment_method": "upi",
        "payment_token": "tok_ok",
        "prescription_id": None,
    }
    arguments.update(overrides)
    placed = order_place(
        client=client,
        items=[ItemRequest(sku=sku, quantity=quantity) for sku, quantity in items],
        **arguments,
    )
    return placed.order
