"""Reverse pickups against the real simulator over HTTP: one booking per key, whatever
the repeats; a refusal and an unreachable partner told apart."""

import datetime
import uuid

import pytest

from core.http import ExternalUnavailable
from logistics.services.returns import PickupItem, PickupRefused, reverse_pickup_book

pytestmark = pytest.mark.django_db
ITEMS = [PickupItem(sku="PARA-500", quantity=2), PickupItem(sku="ORS-ORG", quantity=1)]


def book(key, partner="swift", pincode="560001"):
    return reverse_pickup_book(
        partner=partner, reference="COT-00000001", pincode=pincode, items=ITEMS, idempotency_key=key
    )


def booked(simulator, key):
    return [r for r in simulator.ledger()["returns"] if r["idempotency_key"] == key]


def test_one_pickup_per_key_however_often_it_is_asked(simulator):
    key = f"return:{uuid.uuid4()}:pickup"
    first, again = book(key), book(key)
    assert first == again
    assert first.partner == "swift" and first.awb.startswith("SWIFT-R")
    assert first.pickup_date > datetime.date.today() - datetime.timedelta(days=1)
    [entry] = booked(simulator, key)
    assert entry["target"] == "logistics/swift"
    assert (entry["awb"], entry["reference"], entry["pincode"]) == (
        first.awb,
        "COT-00000001",
        "560001",
    )
    assert entry["items"] == [{"sku": "PARA-500", "quantity": 2}, {"sku": "ORS-ORG", "quantity": 1}]


def test_a_partner_that_does_not_serve_the_pincode_refuses(simulator):
    simulator.control("logistics/roadie", unserviceable_prefixes=["110"])
    key = f"return:{uuid.uuid4()}:pickup"
    with pytest.raises(PickupRefused) as refused:
        book(key, partner="roadie", pincode="110001")
    assert refused.value.partner == "roadie"
    assert booked(simulator, key) == []
    # Another pincode, same key: the refusal was not remembered against it.
    assert book(key, partner="roadie").awb.startswith("ROADIE-R")


def test_a_partner_that_is_down_is_unavailable_and_books_nothing(simulator):
    simulator.control("logistics/swift", down=True)
    key = f"return:{uuid.uuid4()}:pickup"
    with pytest.raises(ExternalUnavailable):
        book(key)
    simulator.control("logistics/swift", down=False)
    assert booked(simulator, key) == []
