"""Shipment booking against the real simulator over HTTP."""

import uuid

import pytest

from core.http import ExternalUnavailable
from logistics.enums import ShipmentStatus
from logistics.models import Shipment
from logistics.services import ParcelItem, shipment_book, shipment_cancel

pytestmark = pytest.mark.django_db
PARCELS = {"BLR-1": [ParcelItem(sku="PARA-500", batch="B24-001", quantity=2)]}


def book(order_id, parcels=PARCELS, pincode="560001"):
    return shipment_book(order_id=order_id, reference="COT-1", pincode=pincode, parcels=parcels)


def shipments(simulator, order_id):
    return [s for s in simulator.ledger()["shipments"] if str(order_id) in s["idempotency_key"]]


def test_books_one_shipment_per_centre_once(simulator):
    order_id = uuid.uuid4()
    parcels = {**PARCELS, "DEL-1": [ParcelItem(sku="ORS-1", batch="B9", quantity=1)]}
    first = book(order_id, parcels)
    again = book(order_id, parcels)
    assert first.ok and again.ok
    assert sorted(s.center for s in again.shipments) == ["BLR-1", "DEL-1"]
    assert all(s.partner == "swift" and s.awb for s in again.shipments)
    assert len(shipments(simulator, order_id)) == 2
    assert list(
        Shipment.objects.get(order_id=order_id, center="BLR-1").items.values_list(
            "sku", "batch", "quantity"
        )
    ) == [("PARA-500", "B24-001", 2)]


def test_partner_down_fails_over(simulator):
    simulator.control("logistics/swift", down=True)
    outcome = book(uuid.uuid4())
    assert outcome.ok and outcome.shipments[0].partner == "roadie"


def test_no_partner_serves_the_pincode(simulator):
    for partner in ("swift", "roadie"):
        simulator.control(f"logistics/{partner}", unserviceable_prefixes=["560"])
    outcome = book(uuid.uuid4())
    assert (outcome.ok, outcome.reason) == (False, "fulfilment_unavailable")


def test_every_partner_down_raises_for_a_retry(simulator):
    for partner in ("swift", "roadie"):
        simulator.control(f"logistics/{partner}", down=True)
    with pytest.raises(ExternalUnavailable):
        book(uuid.uuid4())


def test_cancel_cancels_at_the_partner_once(simulator):
    order_id = uuid.uuid4()
    book(order_id)
    assert shipment_cancel(order_id=order_id) == 1
    assert shipment_cancel(order_id=order_id) == 0
    assert Shipment.objects.get(order_id=order_id).status == ShipmentStatus.CANCELLED
    assert len(simulator.ledger()["cancellations"]) == 1
