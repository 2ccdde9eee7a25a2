"""Units taken out of booked parcels, and the partner told (real simulator over HTTP):
an amendment with what the parcel holds now, once per key; an emptied parcel cancelled;
a parcel already on its way refused, or found too late and logged."""

import logging
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from core.http import ExternalUnavailable
from logistics import partners
from logistics.enums import ShipmentStatus
from logistics.models import Shipment
from logistics.services import (
    ParcelItem,
    ParcelUnits,
    ShipmentNotBooked,
    UnitsNotInShipment,
    shipment_amendment_send,
    shipment_book,
    shipment_units_cancel,
)
from logistics.services.amend import AMENDED, CANCELLED, GONE, TOO_LATE

pytestmark = pytest.mark.django_db
PARCELS = {
    "BLR-1": [
        ParcelItem(sku="PARA-500", batch="P1", quantity=2),
        ParcelItem(sku="PARA-500", batch="P2", quantity=1),
        ParcelItem(sku="ORS-ORG", batch="O1", quantity=1),
    ],
    "DEL-1": [ParcelItem(sku="CETI-10", batch="C1", quantity=2)],
}


@pytest.fixture
def order_id(simulator):
    order_id = uuid.uuid4()
    outcome = shipment_book(
        order_id=order_id, reference="COT-00000007", pincode="560001", parcels=PARCELS
    )
    assert outcome.ok
    return order_id


def parcel(order_id, center="BLR-1") -> Shipment:
    return Shipment.objects.get(order_id=order_id, center=center)


def content(order_id, center="BLR-1") -> list[tuple[str, str, int]]:
    return sorted(parcel(order_id, center).items.values_list("sku", "batch", "quantity"))


def take_out(order_id, units, *, number=1, capture, execute=True):
    with capture(execute=execute), transaction.atomic():
        return shipment_units_cancel(
            order_id=order_id, units=[ParcelUnits(*unit) for unit in units], number=number
        )


def test_units_leave_the_parcel_and_the_partner_gets_its_new_content(
    order_id, simulator, django_capture_on_commit_callbacks
):
    done = take_out(
        order_id,
        [("BLR-1", "PARA-500", "P1", 2), ("BLR-1", "PARA-500", "P2", 1)],
        capture=django_capture_on_commit_callbacks,
    )

    assert (done.amended, done.emptied) == ((parcel(order_id).pk,), ())
    assert content(order_id) == [("ORS-ORG", "O1", 1)]
    assert content(order_id, "DEL-1") == [("CETI-10", "C1", 2)]
    [amendment] = simulator.ledger()["amendments"]
    assert amendment["awb"] == parcel(order_id).awb
    assert amendment["idempotency_key"] == f"order:{order_id}:amend:1:BLR-1"
    assert amendment["items"] == [{"sku": "ORS-ORG", "quantity": 1}]
    assert amendment["reference"] == "COT-00000007"
    # Sending it again is the same amendment.
    key = amendment["idempotency_key"]
    assert shipment_amendment_send(shipment_id=parcel(order_id).pk, key=key) == AMENDED
    assert len(simulator.ledger()["amendments"]) == 1


def test_a_parcel_left_empty_is_cancelled_at_its_partner(
    order_id, simulator, django_capture_on_commit_callbacks
):
    done = take_out(
        order_id, [("DEL-1", "CETI-10", "C1", 2)], capture=django_capture_on_commit_callbacks
    )

    emptied = parcel(order_id, "DEL-1")
    assert (done.amended, done.emptied) == ((), (emptied.pk,))
    assert emptied.status == ShipmentStatus.CANCELLED
    assert [c["awb"] for c in simulator.ledger()["cancellations"]] == [emptied.awb]
    assert simulator.ledger()["amendments"] == []
    assert parcel(order_id).status == ShipmentStatus.BOOKED
    # Told again (a redelivered task): nothing more happens.
    assert shipment_amendment_send(shipment_id=emptied.pk, key="again") == GONE
    assert len(simulator.ledger()["cancellations"]) == 1


def test_units_the_parcels_do_not_hold_change_nothing(
    order_id, simulator, django_capture_on_commit_callbacks
):
    before = content(order_id)
    for units in (
        [("BLR-1", "PARA-500", "P1", 3)],
        [("BLR-1", "PARA-500", "P9", 1)],
        [("MUM-1", "PARA-500", "P1", 1)],
        # The first unit fits; the second does not: neither is taken.
        [("BLR-1", "ORS-ORG", "O1", 1), ("BLR-1", "PARA-500", "P2", 2)],
    ):
        with pytest.raises(UnitsNotInShipment):
            take_out(order_id, units, capture=django_capture_on_commit_callbacks)
    assert content(order_id) == before
    assert simulator.ledger()["amendments"] == []


def test_a_parcel_picked_up_cannot_lose_units(
    order_id, simulator, django_capture_on_commit_callbacks
):
    Shipment.objects.filter(pk=parcel(order_id).pk).update(status=ShipmentStatus.PICKED_UP)
    with pytest.raises(ShipmentNotBooked):
        take_out(
            order_id, [("BLR-1", "ORS-ORG", "O1", 1)], capture=django_capture_on_commit_callbacks
        )
    assert ("ORS-ORG", "O1", 1) in content(order_id)
    assert simulator.ledger()["amendments"] == []


def test_an_unreachable_partner_is_asked_again_with_the_same_key(
    order_id, simulator, django_capture_on_commit_callbacks
):
    # Taken out and committed; the task after commit is left to this test.
    take_out(
        order_id,
        [("BLR-1", "ORS-ORG", "O1", 1)],
        capture=django_capture_on_commit_callbacks,
        execute=False,
    )
    shipment, key = parcel(order_id), f"order:{order_id}:amend:1:BLR-1"
    simulator.control("logistics/swift", down=True)
    with pytest.raises(ExternalUnavailable):
        shipment_amendment_send(shipment_id=shipment.pk, key=key)
    simulator.control("logistics/swift", down=False)
    # Meanwhile another change: the late amendment carries what the parcel holds now.
    take_out(
        order_id,
        [("BLR-1", "PARA-500", "P2", 1)],
        number=2,
        capture=django_capture_on_commit_callbacks,
        execute=False,
    )

    assert shipment_amendment_send(shipment_id=shipment.pk, key=key) == AMENDED
    assert shipment_amendment_send(shipment_id=shipment.pk, key=key) == AMENDED

    [amendment] = simulator.ledger()["amendments"]
    assert amendment["items"] == [{"sku": "PARA-500", "quantity": 2}]


def test_an_amendment_too_late_is_logged_not_retried(
    order_id, simulator, django_capture_on_commit_callbacks, caplog
):
    take_out(
        order_id,
        [("BLR-1", "ORS-ORG", "O1", 1)],
        capture=django_capture_on_commit_callbacks,
        execute=False,
    )
    shipment, key = parcel(order_id), f"order:{order_id}:amend:1:BLR-1"
    # The partner has the parcel out of reach already (here: its booking cancelled there).
    partners.cancel(partner=shipment.partner, awb=shipment.awb)
    with caplog.at_level(logging.ERROR, logger="logistics.services.amend"):
        assert shipment_amendment_send(shipment_id=shipment.pk, key=key) == TOO_LATE
    assert "came too late" in caplog.text
    # Our own record says picked up: the partner is not even asked.
    Shipment.objects.filter(pk=shipment.pk).update(status=ShipmentStatus.PICKED_UP)
    assert shipment_amendment_send(shipment_id=shipment.pk, key=key) == TOO_LATE
    assert simulator.ledger()["amendments"] == []
    # Two bookings, the cancel and the one refused amendment: no retry, no second ask.
    assert simulator.requests()["logistics/swift"] == 4


def test_an_amendment_whose_task_was_lost_is_owed_and_sent_by_the_sweeper(
    order_id, simulator, django_capture_on_commit_callbacks, monkeypatch
):
    from logistics import tasks

    def unreachable(*args, **kwargs):
        raise ConnectionError("broker down")

    # The broker cannot take the task: nothing is sent, but the amendment is owed.
    with monkeypatch.context() as patched:
        patched.setattr(tasks.amend_shipment, "delay", unreachable)
        take_out(
            order_id, [("BLR-1", "ORS-ORG", "O1", 1)], capture=django_capture_on_commit_callbacks
        )
    assert simulator.ledger()["amendments"] == []
    key = f"order:{order_id}:amend:1:BLR-1"
    assert parcel(order_id).amendment_owed == key
    assert tasks.sweep_amendments.apply().get() == 0  # not owed for long yet
    Shipment.objects.filter(order_id=order_id).update(
        updated_at=timezone.now() - timedelta(seconds=tasks.SWEEP_AFTER_SECONDS + 1)
    )
    assert tasks.sweep_amendments.apply().get() == 1
    assert [a["idempotency_key"] for a in simulator.ledger()["amendments"]] == [key]
    assert parcel(order_id).amendment_owed == ""
    assert tasks.sweep_amendments.apply().get() == 0


def test_emptied_is_cancelled_even_when_sent_as_an_amendment(order_id, simulator):
    shipment = parcel(order_id, "DEL-1")
    shipment.items.all().delete()
    assert shipment_amendment_send(shipment_id=shipment.pk, key="k") == CANCELLED
    assert parcel(order_id, "DEL-1").status == ShipmentStatus.CANCELLED
