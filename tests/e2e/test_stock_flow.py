"""Stock end to end: the live API, a prefork Celery worker (several processes) on the real
Redis, the shared database. Each test loads its own SKUs, so runs never interfere."""

from __future__ import annotations

import copy
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from orders.tests.factories import ORDER_BODY

pytestmark = pytest.mark.e2e


@pytest.fixture
def catalog(django_db_blocker):
    """Load catalog entries into the database the live processes use (committed)."""
    from inventory.services import catalog_load

    def load(**sections):
        with django_db_blocker.unblock():
            catalog_load(sections)

    return load


def batches(django_db_blocker, sku):
    from inventory.models import StockBatch

    with django_db_blocker.unblock():
        return {
            b.batch: (b.on_hand, b.reserved)
            for b in StockBatch.objects.filter(product__sku=sku).order_by("batch")
        }


def body(sku, quantity):
    data = copy.deepcopy(ORDER_BODY)
    data["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
    data["items"] = [{"sku": sku, "quantity": quantity}]
    return data


def product(sku):
    return {"sku": sku, "name": f"Test {sku}", "price": "10.00", "schedule": "otc"}


def stock(center, sku, batch, quantity, expires_on="2030-01-31"):
    return {
        "center": center,
        "sku": sku,
        "batch": batch,
        "expires_on": expires_on,
        "quantity": quantity,
    }


def test_many_concurrent_orders_for_the_last_units_never_oversell(
    stack, catalog, django_db_blocker
):
    sku = f"LAST-{uuid.uuid4().hex[:6].upper()}"
    catalog(
        products=[product(sku)],
        stock=[stock("BLR-1", sku, f"{sku}-1", 2), stock("BLR-1", sku, f"{sku}-2", 1)],
    )

    def available():
        with stack.client() as client:
            response = client.get("/api/v1/products/", params={"sku": sku, "pincode": "560001"})
        assert response.status_code == 200, response.text
        return response.json()["results"][0]["available_quantity"]

    assert available() == 3

    def place(i):
        with stack.client("web" if i % 2 else "mobile") as client:
            response = client.post("/api/v1/orders/", json=body(sku, 1))
            assert response.status_code == 202, response.text
            return "web" if i % 2 else "mobile", response.json()["id"]

    with ThreadPoolExecutor(max_workers=12) as pool:
        placed = list(pool.map(place, range(12)))
    finals = []
    for name, order_id in placed:
        with stack.client(name) as client:
            finals.append(stack.wait_for(client, order_id))

    outcomes = sorted((o["status"], o["failure_reason"]) for o in finals)
    assert outcomes == [("confirmed", None)] * 3 + [("rejected", "out_of_stock")] * 9
    assert batches(django_db_blocker, sku) == {f"{sku}-1": (0, 0), f"{sku}-2": (0, 0)}
    assert available() == 0
    ledger = stack.simulator.ledger()
    confirmed = {o["id"] for o in finals if o["status"] == "confirmed"}
    charged = {c["idempotency_key"].split(":")[1] for c in ledger["charges"]}
    assert charged == confirmed  # the rejected ones were never charged


def test_an_order_no_centre_can_serve_alone_ships_from_two_with_batches(
    stack, catalog, django_db_blocker
):
    run = uuid.uuid4().hex[:6].upper()
    sku, center = f"SPLIT-{run}", f"E2E-{run}"
    catalog(
        products=[product(sku)],
        centers=[{"code": center, "name": "Second", "priority": 90, "pincode_prefixes": ["560"]}],
        stock=[
            stock("BLR-1", sku, f"{sku}-LATE", 5, expires_on="2030-06-30"),
            stock("BLR-1", sku, f"{sku}-SOON", 1, expires_on="2029-06-30"),
            stock("BLR-1", sku, f"{sku}-SHORT", 50, expires_on="2026-12-01"),  # below the floor
            stock(center, sku, f"{sku}-THERE", 4),
        ],
    )

    with stack.client() as client:
        order_id = client.post("/api/v1/orders/", json=body(sku, 8)).json()["id"]
        order = stack.wait_for(client, order_id)

    assert order["status"] == "confirmed", order
    shipped = {
        s["center"]: sorted((i["batch"], i["quantity"]) for i in s["items"])
        for s in order["shipments"]
    }
    assert shipped == {
        "BLR-1": [(f"{sku}-LATE", 5), (f"{sku}-SOON", 1)],
        center: [(f"{sku}-THERE", 2)],
    }
    assert all(s["awb"] and s["status"] == "booked" for s in order["shipments"])
    types = [e["type"] for e in order["events"]]
    assert types.count("shipment.booked") == 2 and "inventory.committed" in types
    assert batches(django_db_blocker, sku) == {
        f"{sku}-LATE": (0, 0),
        f"{sku}-SHORT": (50, 0),
        f"{sku}-SOON": (0, 0),
        f"{sku}-THERE": (2, 0),
    }
    booked = [s for s in stack.simulator.ledger()["shipments"] if order["number"] in str(s)]
    assert len(booked) == 2
