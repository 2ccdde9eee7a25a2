"""Proof of delivery: a parcel holding a prescription item gets a delivery OTP at booking,
its partner is asked to hand it over only against it, and a `delivered` without the
courier's word that it checked the OTP is refused (real simulator, the signed webhook)."""

import json
import uuid

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from core.webhooks import SIGNATURE_HEADER, webhook_signature
from logistics.models import Shipment, ShipmentUpdate
from logistics.services import ParcelItem, shipment_book, shipment_tracking_apply
from logistics.signals import shipment_changed

pytestmark = pytest.mark.django_db
URL = "/api/v1/webhooks/logistics/"
SECRET = "logistics-otp-test-secret"
AT = "2026-01-05T10:00:00Z"
RX = ParcelItem(sku="CEFI-200", batch="B1", quantity=1, otp_required=True)
OTC = ParcelItem(sku="PARA-500", batch="B2", quantity=2)


@pytest.fixture(autouse=True)
def secret(settings):
    settings.LOGISTICS_WEBHOOK_SECRET = SECRET


def book(order_id, parcels):
    outcome = shipment_book(order_id=order_id, reference="COT-9", pincode="560001", parcels=parcels)
    assert outcome.ok
    return {s.center: s for s in outcome.shipments}


def post(body):
    raw = json.dumps(body).encode()
    headers = {SIGNATURE_HEADER: webhook_signature(SECRET, raw)}
    return APIClient().post(URL, raw, content_type="application/json", headers=headers)


def booking_requests(simulator, order_id):
    sent = simulator.ledger()["shipments"]
    return {s["awb"]: s for s in sent if str(order_id) in s["idempotency_key"]}


@pytest.fixture
def rx_shipment(simulator):
    """A booked parcel with a prescription item, out for delivery."""
    shipment = book(uuid.uuid4(), {"BLR-1": [OTC, RX]})["BLR-1"]
    assert post({"awb": shipment.awb, "status": "out_for_delivery", "at": AT}).status_code == 200
    return shipment


def test_a_parcel_with_a_prescription_item_gets_an_otp_and_its_partner_is_told(simulator):
    order_id = uuid.uuid4()
    shipments = book(order_id, {"BLR-1": [OTC, RX], "DEL-1": [OTC]})
    otp = shipments["BLR-1"].delivery_otp
    assert len(otp) == 6 and otp.isdigit()
    assert shipments["DEL-1"].delivery_otp == ""
    sent = booking_requests(simulator, order_id)
    assert sent[shipments["BLR-1"].awb]["otp_required"] is True
    assert sent[shipments["DEL-1"].awb]["otp_required"] is False
    # The OTP itself never goes to the partner: only the customer has it.
    assert otp not in json.dumps(sent)
    # Booking again (a retried step) keeps the shipment, its OTP and its one booking.
    again = book(order_id, {"BLR-1": [OTC, RX], "DEL-1": [OTC]})
    assert again["BLR-1"].delivery_otp == otp
    assert len(booking_requests(simulator, order_id)) == 2


def test_delivered_without_the_otp_check_is_409_and_changes_nothing(rx_shipment):
    before = list(ShipmentUpdate.objects.filter(shipment=rx_shipment).values_list("status"))
    for extra in ({}, {"otp_verified": False}):
        response = post({"awb": rx_shipment.awb, "status": "delivered", "at": AT, **extra})
        assert response.status_code == 409, response.content
        [error] = response.json()["errors"]
        assert error["code"] == "otp_required"
        assert response.json()["type"] == "client_error"
    shipment = Shipment.objects.get(pk=rx_shipment.pk)
    assert shipment.status == "out_for_delivery"
    assert list(ShipmentUpdate.objects.filter(shipment=shipment).values_list("status")) == before


def test_delivered_with_the_otp_check_delivers_and_a_replay_answers_as_before(rx_shipment):
    delivered = {"awb": rx_shipment.awb, "status": "delivered", "at": AT}
    response = post({**delivered, "otp_verified": True})
    assert (response.status_code, response.json()) == (200, {"result": "applied"})
    shipment = Shipment.objects.get(pk=rx_shipment.pk)
    assert shipment.status == "delivered"
    assert ShipmentUpdate.objects.filter(shipment=shipment, status="delivered").count() == 1
    # A replay, with or without the flag, is a replay: 200 and nothing new.
    for body in (delivered, {**delivered, "otp_verified": True}):
        response = post(body)
        assert (response.status_code, response.json()) == (200, {"result": "already_applied"})
    assert ShipmentUpdate.objects.filter(shipment=shipment, status="delivered").count() == 1


def test_a_parcel_without_prescription_items_is_delivered_without_an_otp(simulator):
    shipment = book(uuid.uuid4(), {"BLR-1": [OTC]})["BLR-1"]
    response = post({"awb": shipment.awb, "status": "delivered", "at": AT})
    assert (response.status_code, response.json()) == (200, {"result": "applied"})


def test_the_service_refuses_and_other_outcomes_come_first(rx_shipment):
    def apply(**kwargs):
        return shipment_tracking_apply(awb=rx_shipment.awb, status="delivered", at=AT, **kwargs)

    assert apply() == "otp_required"
    Shipment.objects.filter(pk=rx_shipment.pk).update(status="cancelled")
    # A cancelled shipment's news is ignored, OTP or not.
    assert apply() == "ignored"
    assert shipment_tracking_apply(awb="NO-SUCH-AWB", status="delivered", at=AT) == (
        "unknown_reference"
    )


@pytest.fixture
def ops(client):
    user = User.objects.create_user("ops-otp", password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="logistics", codename__in=["move_shipment", "view_shipment"]
        )
    )
    client.force_login(user)
    return client


def test_ops_deliver_by_hand_only_saying_they_checked_the_otp(rx_shipment, ops):
    changelist = "/admin/logistics/shipment/"
    selected = {"action": "move_by_hand", "_selected_action": [rx_shipment.pk]}
    form = ops.post(changelist, selected)
    assert form.status_code == 200 and b"Delivery OTP checked" in form.content
    unchecked = {**selected, "confirm": "yes", "status": "delivered", "note": "customer called"}
    refused = ops.post(changelist, unchecked)
    assert b"delivered only against the customer&#x27;s OTP" in refused.content
    assert Shipment.objects.get(pk=rx_shipment.pk).status == "out_for_delivery"

    told = []

    def heard(sender, **kwargs):
        told.append(kwargs["data"])

    shipment_changed.connect(heard)
    try:
        moved = ops.post(changelist, {**unchecked, "otp_checked": "on"})
    finally:
        shipment_changed.disconnect(heard)
    assert moved.status_code == 302
    assert Shipment.objects.get(pk=rx_shipment.pk).status == "delivered"
    # What the order's timeline keeps: who, and that they attest the OTP check.
    [data] = told
    assert data["by"] == "ops:ops-otp"
    assert data["note"] == "customer called (delivery OTP checked by staff)"


def test_ops_hand_moves_of_parcels_without_an_otp_ask_nothing(simulator, ops):
    shipment = book(uuid.uuid4(), {"BLR-1": [OTC]})["BLR-1"]
    selected = {"action": "move_by_hand", "_selected_action": [shipment.pk]}
    assert b"Delivery OTP checked" not in ops.post("/admin/logistics/shipment/", selected).content
    moved = ops.post(
        "/admin/logistics/shipment/",
        {**selected, "confirm": "yes", "status": "delivered", "note": "courier app was down"},
    )
    assert moved.status_code == 302
    assert Shipment.objects.get(pk=shipment.pk).status == "delivered"
