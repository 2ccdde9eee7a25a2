import datetime

import pytest

from core.tests.factories import ApiClientFactory
from prescriptions.enums import CheckResult, PrescriptionStatus
from prescriptions.models import Prescription, PrescriptionItem
from prescriptions.services import RxLine, prescription_check

pytestmark = pytest.mark.django_db
TODAY = datetime.date(2026, 11, 25)


def rx(*, status=PrescriptionStatus.APPROVED, customer_id="C-1", issued_on=TODAY, items=None):
    prescription = Prescription.objects.create(
        client=ApiClientFactory(),
        customer_id=customer_id,
        patient_name="A. Rao",
        doctor_name="Dr. B. Iyer",
        doctor_registration_no="KMC-12345",
        issued_on=issued_on,
        status=status,
    )
    for sku, quantity, dispensed in items or [("AMOX-500", 10, 0)]:
        PrescriptionItem.objects.create(
            prescription=prescription, sku=sku, quantity=quantity, dispensed_quantity=dispensed
        )
    return prescription


def check(lines, prescription=None, customer_id="C-1"):
    return prescription_check(
        client_id=prescription.client_id if prescription else None,
        customer_id=customer_id,
        prescription_id=prescription.pk if prescription else None,
        lines=[RxLine(sku=s, quantity=q, schedule=sch) for s, q, sch in lines],
        ordered_on=TODAY,
    )


def test_otc_needs_nothing():
    assert check([("PARA-500", 2, "otc")]) == CheckResult.OK


def test_schedule_x_is_never_sold_online_even_with_a_prescription():
    assert check([("METH-10", 1, "x")], rx(items=[("METH-10", 5, 0)])) == "not_sellable_online"


def test_schedule_h_without_prescription():
    assert check([("AMOX-500", 1, "h")]) == CheckResult.PRESCRIPTION_REQUIRED


def test_approved_prescription_covering_the_line():
    assert check([("AMOX-500", 10, "h"), ("PARA-500", 1, "otc")], rx()) == CheckResult.OK


@pytest.mark.parametrize(
    ("kwargs", "lines", "expected"),
    [
        ({"customer_id": "C-2"}, [("AMOX-500", 1, "h")], "prescription_invalid"),
        (
            {"issued_on": TODAY + datetime.timedelta(days=1)},
            [("AMOX-500", 1, "h")],
            "prescription_invalid",
        ),
        (
            {"issued_on": TODAY - datetime.timedelta(days=181)},
            [("AMOX-500", 1, "h1")],
            "prescription_expired",
        ),
        ({}, [("CEFI-200", 1, "h1")], "prescription_invalid"),
        (
            {"items": [("AMOX-500", 10, 8)]},
            [("AMOX-500", 3, "h")],
            "prescription_quantity_exceeded",
        ),
        ({"status": PrescriptionStatus.REJECTED}, [("AMOX-500", 1, "h")], "prescription_rejected"),
        ({"status": PrescriptionStatus.PENDING_REVIEW}, [("AMOX-500", 1, "h")], "on_hold"),
    ],
)
def test_prescription_rules(kwargs, lines, expected):
    assert check(lines, rx(**kwargs)) == expected


def test_issued_exactly_at_the_validity_limit_is_valid():
    assert check([("AMOX-500", 1, "h")], rx(issued_on=TODAY - datetime.timedelta(days=180))) == "ok"
