"""Shipment booking against the real simulator over HTTP."""

import datetime
import uuid

import pytest
from django.utils import timezone

from core.http import ExternalServerError, ExternalTimeout, ExternalUnavailable
from logistics.enums import ShipmentStatus
from logistics.models import Shipment, ShipmentAttempt
from logistics.services import BookingInProgress, ParcelItem, shipment_book, shipment_cancel

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


def attempts(order_id):
    return list(
        ShipmentAttempt.objects.filter(shipment__order_id=order_id).values_list(
            "partner", "status", "sends"
        )
    )


def test_a_refusing_partner_is_skipped_and_never_asked_again(simulator):
    simulator.control("logistics/swift", unserviceable_prefixes=["560"])
    order_id = uuid.uuid4()
    assert book(order_id).shipments[0].partner == "roadie"
    assert attempts(order_id) == [("swift", "refused", 1), ("roadie", "booked", 1)]


def test_a_timed_out_booking_never_fails_over_even_when_its_partner_then_looks_down(
    simulator, settings
):
    # Swift books on arrival and answers after 1 s; we give up at 0.3 s: outcome unknown.
    settings.COT_HTTP_READ_TIMEOUT = 0.3
    simulator.control("logistics/swift", latency_ms=1000)
    order_id = uuid.uuid4()
    with pytest.raises(ExternalTimeout):
        book(order_id)
    # Swift is down now: roadie is not asked, the booking waits for swift.
    simulator.control("logistics/swift", latency_ms=0, down=True)
    with pytest.raises(ExternalUnavailable):
        book(order_id)
    assert {s["target"] for s in shipments(simulator, order_id)} == {"logistics/swift"}
    simulator.control("logistics/swift", down=False)
    outcome = book(order_id)
    assert (outcome.ok, outcome.shipments[0].partner) == (True, "swift")
    [booking] = shipments(simulator, order_id)
    assert outcome.shipments[0].awb == booking["awb"]
    assert attempts(order_id) == [("swift", "booked", 3)]


def test_a_server_error_is_retried_at_the_same_partner_with_the_same_key(simulator):
    simulator.control("logistics/swift", error_rate=1.0)
    order_id = uuid.uuid4()
    for _ in range(2):
        with pytest.raises(ExternalServerError):
            book(order_id)
    simulator.control("logistics/swift", error_rate=0.0)
    assert book(order_id).shipments[0].partner == "swift"
    keys = {a.idempotency_key for a in ShipmentAttempt.objects.filter(shipment__order_id=order_id)}
    assert keys == {f"order:{order_id}:shipment:BLR-1:1"}


def test_an_attempt_being_sent_elsewhere_is_not_sent_again(simulator):
    order_id = uuid.uuid4()
    simulator.control("logistics/swift", down=True)
    simulator.control("logistics/roadie", down=True)
    with pytest.raises(ExternalUnavailable):
        book(order_id)
    simulator.control("logistics/swift", down=False)
    simulator.control("logistics/roadie", down=False)
    # Another process claimed the next attempt (a fresh one at swift) and is sending it.
    shipment = Shipment.objects.get(order_id=order_id)
    attempt = ShipmentAttempt.objects.create(
        shipment=shipment,
        partner="swift",
        idempotency_key=f"{shipment.idempotency_key}:3",
        sends=1,
        lease_until=timezone.now() + datetime.timedelta(seconds=30),
    )
    with pytest.raises(BookingInProgress):
        book(order_id)
    assert shipments(simulator, order_id) == []
    ShipmentAttempt.objects.filter(pk=attempt.pk).update(
        lease_until=timezone.now() - datetime.timedelta(seconds=1),
        request={"reference": "COT-1", "pincode": "560001", "items": []},
    )
    assert book(order_id).shipments[0].partner == "swift"


def test_cancelling_settles_a_booking_whose_answer_was_lost_and_cancels_it(simulator, settings):
    settings.COT_HTTP_READ_TIMEOUT = 0.3
    simulator.control("logistics/swift", latency_ms=1000)
    order_id = uuid.uuid4()
    with pytest.raises(ExternalTimeout):
        book(order_id)
    simulator.control("logistics/swift", latency_ms=0)
    assert shipment_cancel(order_id=order_id) == 1
    shipment = Shipment.objects.get(order_id=order_id)
    [booking] = shipments(simulator, order_id)
    assert (shipment.status, shipment.awb) == (ShipmentStatus.CANCELLED, booking["awb"])
    assert [c["awb"] for c in simulator.ledger()["cancellations"]] == [booking["awb"]]
    book(order_id)  # a late booking step books nothing more
    assert len(shipments(simulator, order_id)) == 1


def test_cancelling_before_the_first_send_abandons_the_attempt(simulator):
    order_id = uuid.uuid4()
    shipment = Shipment.objects.create(
        order_id=order_id, center="BLR-1", idempotency_key=f"order:{order_id}:shipment:BLR-1"
    )
    ShipmentAttempt.objects.create(
        shipment=shipment, partner="swift", idempotency_key=f"{shipment.idempotency_key}:1"
    )
    assert shipment_cancel(order_id=order_id) == 1
    assert attempts(order_id) == [("swift", "abandoned", 0)]
    assert simulator.ledger()["cancellations"] == []
    with pytest.raises(BookingInProgress):  # a late booking step books nothing
        book(order_id)
    assert shipments(simulator, order_id) == []
