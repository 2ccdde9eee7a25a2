"""Whose prescription an order may use, how long it is valid per schedule, and how many
orders may draw on it (`max_dispenses`), against the real database."""

import datetime
import json
import threading
import uuid

import pytest
from django.db import connection
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from prescriptions.enums import CheckResult, PrescriptionStatus
from prescriptions.models import Dispensation, PrescriptionItem
from prescriptions.services import (
    ReturnedUnit,
    RxItemRequest,
    RxLine,
    prescription_check,
    prescription_dispense,
    prescription_return,
    prescription_units_returned,
)
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db
TODAY = datetime.date(2026, 11, 25)


def check(prescription, lines=(("AMOX-500", 1, "h"),), *, client_id=None, customer_id="C-1001"):
    return prescription_check(
        client_id=prescription.client_id if client_id is None else client_id,
        customer_id=customer_id,
        prescription_id=prescription.pk,
        lines=[RxLine(sku=sku, quantity=q, schedule=schedule) for sku, q, schedule in lines],
        ordered_on=TODAY,
    )


def issued(days_ago):
    return TODAY - datetime.timedelta(days=days_ago)


def dispense(prescription, order_id=None, lines=(("AMOX-500", 1),)):
    return prescription_dispense(
        order_id=order_id or uuid.uuid4(),
        prescription_id=prescription.pk,
        lines=[RxItemRequest(sku, quantity) for sku, quantity in lines],
    )


def dispensed(prescription, sku="AMOX-500"):
    return PrescriptionItem.objects.get(prescription=prescription, sku=sku).dispensed_quantity


# --- The uploading client only ----------------------------------------------------------


def test_the_uploading_clients_order_may_use_it():
    prescription = prescription_with([("AMOX-500", 10)], issued_on=issued(3))
    assert check(prescription) == CheckResult.OK


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        # What the prescription is like never shows through to another client.
        {"status": PrescriptionStatus.REJECTED},
        {"status": PrescriptionStatus.PENDING_REVIEW},
        {"issued_on": issued(400)},
    ],
)
def test_another_clients_prescription_is_invalid_even_for_the_same_customer(kwargs):
    prescription = prescription_with([("AMOX-500", 10)], **{"issued_on": issued(3), **kwargs})
    other = ApiClientFactory(name="other-shop")
    assert check(prescription, client_id=other.pk) == CheckResult.PRESCRIPTION_INVALID


# --- Validity per schedule --------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_ago", "lines", "expected"),
    [
        (60, [("AMOX-500", 1, "h")], CheckResult.OK),
        (180, [("AMOX-500", 1, "h")], CheckResult.OK),
        (181, [("AMOX-500", 1, "h")], CheckResult.PRESCRIPTION_EXPIRED),
        (30, [("CEFI-200", 1, "h1")], CheckResult.OK),
        (31, [("CEFI-200", 1, "h1")], CheckResult.PRESCRIPTION_EXPIRED),
        (60, [("CEFI-200", 1, "h1")], CheckResult.PRESCRIPTION_EXPIRED),
        # One h1 line holds the whole order to the H1 window.
        (60, [("AMOX-500", 1, "h"), ("CEFI-200", 1, "h1")], CheckResult.PRESCRIPTION_EXPIRED),
        # OTC lines have no window of their own.
        (60, [("AMOX-500", 1, "h"), ("PARA-500", 1, "otc")], CheckResult.OK),
    ],
)
def test_validity_follows_the_schedules_of_the_rx_lines(days_ago, lines, expected):
    prescription = prescription_with(
        [("AMOX-500", 10), ("CEFI-200", 4)], issued_on=issued(days_ago)
    )
    assert check(prescription, lines) == expected


def test_validity_windows_come_from_the_settings(settings):
    settings.COT_PRESCRIPTION_VALIDITY_DAYS = 20
    settings.COT_PRESCRIPTION_VALIDITY_DAYS_H1 = 90
    prescription = prescription_with([("AMOX-500", 10), ("CEFI-200", 4)], issued_on=issued(60))
    assert check(prescription, [("CEFI-200", 1, "h1")]) == CheckResult.OK
    assert check(prescription, [("AMOX-500", 1, "h")]) == CheckResult.PRESCRIPTION_EXPIRED
    # The shortest window of the order's schedules wins.
    assert (
        check(prescription, [("AMOX-500", 1, "h"), ("CEFI-200", 1, "h1")])
        == CheckResult.PRESCRIPTION_EXPIRED
    )


# --- max_dispenses in the check ---------------------------------------------------------


def test_the_check_refuses_once_max_dispenses_orders_draw_on_it():
    prescription = prescription_with([("AMOX-500", 10)], issued_on=issued(3), max_dispenses=2)
    first, second = uuid.uuid4(), uuid.uuid4()
    assert dispense(prescription, first) and check(prescription) == CheckResult.OK
    assert dispense(prescription, second)
    assert check(prescription) == CheckResult.PRESCRIPTION_QUANTITY_EXCEEDED

    prescription_return(order_id=first)  # cancelled: its dispense is given back
    assert check(prescription) == CheckResult.OK


def test_an_order_with_several_lines_counts_once():
    prescription = prescription_with(
        [("AMOX-500", 10), ("CEFI-200", 4)], issued_on=issued(3), max_dispenses=2
    )
    assert dispense(prescription, lines=[("AMOX-500", 1), ("CEFI-200", 1)])
    assert check(prescription) == CheckResult.OK


def test_without_max_dispenses_only_the_quantities_limit_it():
    prescription = prescription_with([("AMOX-500", 10)], issued_on=issued(3))
    for _ in range(5):
        assert dispense(prescription)
    assert check(prescription) == CheckResult.OK


def test_a_partly_returned_order_still_counts_and_a_fully_returned_one_does_not():
    prescription = prescription_with([("AMOX-500", 10)], issued_on=issued(3), max_dispenses=1)
    order = uuid.uuid4()
    assert dispense(prescription, order, lines=[("AMOX-500", 2)])

    def give_back(quantity, reference):
        prescription_units_returned(
            order_id=order,
            order_number="COT-00000001",
            reference=reference,
            lines=[ReturnedUnit("AMOX-500", "B1", quantity)],
        )

    give_back(1, "return:1")
    assert check(prescription) == CheckResult.PRESCRIPTION_QUANTITY_EXCEEDED
    give_back(1, "return:2")
    assert check(prescription) == CheckResult.OK


# --- max_dispenses in the claim ---------------------------------------------------------


def test_the_claim_refuses_the_order_past_max_dispenses_and_claims_nothing():
    prescription = prescription_with([("AMOX-500", 10)], max_dispenses=2)
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert dispense(prescription, first) and dispense(prescription, second)

    assert dispense(prescription, third) is False
    assert dispensed(prescription) == 2
    assert not Dispensation.objects.filter(order_id=third).exists()
    # A redelivered claim of an order already drawing on it is not a new dispense.
    assert dispense(prescription, second) is True
    assert dispensed(prescription) == 2

    prescription_return(order_id=first)
    assert dispense(prescription, third) is True
    assert dispensed(prescription) == 2


def test_an_unknown_prescription_is_never_claimed():
    prescription = prescription_with([("AMOX-500", 10)])
    assert (
        prescription_dispense(
            order_id=uuid.uuid4(),
            prescription_id=uuid.uuid4(),
            lines=[RxItemRequest("AMOX-500", 1)],
        )
        is False
    )
    assert dispensed(prescription) == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_on_a_single_dispense_prescription_dispense_exactly_once():
    # Quantity for all of them: only max_dispenses can stop the others.
    prescription = prescription_with([("AMOX-500", 100)], max_dispenses=1)
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        try:
            barrier.wait()
            results.append(dispense(prescription, lines=[("AMOX-500", 2)]))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert dispensed(prescription) == 2
    assert Dispensation.objects.values("order_id").distinct().count() == 1


# --- The upload field -------------------------------------------------------------------


def _post(key, **changes):
    body = {
        "customer_id": "C-1001",
        "patient_name": "A. Rao",
        "doctor_name": "Dr. B. Iyer",
        "doctor_registration_no": "KMC-12345",
        "issued_on": "2026-11-20",
        "items": [{"sku": "AMOX-500", "quantity": 10}],
        **changes,
    }
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return api, api.post(
        "/api/v1/prescriptions/", json.dumps(body), content_type="application/json"
    )


@pytest.mark.parametrize(
    ("changes", "shown"), [({}, None), ({"max_dispenses": None}, None), ({"max_dispenses": 3}, 3)]
)
def test_upload_takes_max_dispenses_and_shows_it(demo_catalog, changes, shown):
    api, response = _post(api_key_for(ApiClientFactory()), **changes)
    assert response.status_code == 201, response.content
    assert response.json()["max_dispenses"] == shown
    assert (
        api.get(f"/api/v1/prescriptions/{response.json()['id']}/").json()["max_dispenses"] == shown
    )


@pytest.mark.parametrize("value", [0, -1, "many"])
def test_upload_refuses_a_max_dispenses_below_one(demo_catalog, value):
    _, response = _post(api_key_for(ApiClientFactory()), max_dispenses=value)
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "max_dispenses"
