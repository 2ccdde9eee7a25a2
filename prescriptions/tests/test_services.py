import threading
import uuid

import pytest
from django.contrib.auth.models import User
from django.db import connection

from prescriptions.enums import PrescriptionStatus
from prescriptions.models import (
    Dispensation,
    H1RegisterEntry,
    Prescription,
    PrescriptionItem,
    RegulatoryRecordError,
)
from prescriptions.services import (
    AlreadyReviewed,
    H1Line,
    RxItemRequest,
    h1_register_record,
    prescription_dispense,
    prescription_return,
    prescription_review,
)
from prescriptions.signals import prescription_reviewed
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db


def dispensed(prescription, sku="AMOX-500"):
    return PrescriptionItem.objects.get(prescription=prescription, sku=sku).dispensed_quantity


def test_review_decides_once_and_announces_after_commit(django_capture_on_commit_callbacks):
    prescription = prescription_with([("AMOX-500", 10)], status=PrescriptionStatus.PENDING_REVIEW)
    pharmacist = User.objects.create_user("ph", is_staff=True)
    heard = []
    prescription_reviewed.connect(
        lambda sender, **kw: heard.append(kw), weak=False, dispatch_uid="test-listener"
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            prescription_review(
                prescription_id=prescription.pk, reviewer=pharmacist, decision="approved", note="ok"
            )
        with pytest.raises(AlreadyReviewed):
            prescription_review(
                prescription_id=prescription.pk, reviewer=pharmacist, decision="rejected"
            )
    finally:
        prescription_reviewed.disconnect(dispatch_uid="test-listener")
    prescription.refresh_from_db()
    assert (prescription.status, prescription.review_note, prescription.reviewed_by) == (
        "approved",
        "ok",
        pharmacist,
    )
    assert [(h["prescription_id"], h["status"]) for h in heard] == [(prescription.pk, "approved")]


def test_dispense_is_all_or_nothing_and_idempotent():
    prescription = prescription_with([("AMOX-500", 10), ("CEFI-200", 2)])
    order = uuid.uuid4()
    lines = [RxItemRequest("AMOX-500", 4), RxItemRequest("CEFI-200", 3)]
    assert (
        prescription_dispense(order_id=order, prescription_id=prescription.pk, lines=lines) is False
    )
    assert dispensed(prescription) == 0 and not Dispensation.objects.exists()

    lines = [RxItemRequest("AMOX-500", 4), RxItemRequest("CEFI-200", 2)]
    assert prescription_dispense(order_id=order, prescription_id=prescription.pk, lines=lines)
    assert prescription_dispense(order_id=order, prescription_id=prescription.pk, lines=lines)
    assert dispensed(prescription) == 4 and dispensed(prescription, "CEFI-200") == 2


def test_return_gives_quantities_back_once():
    prescription = prescription_with([("AMOX-500", 10)])
    order = uuid.uuid4()
    prescription_dispense(
        order_id=order, prescription_id=prescription.pk, lines=[RxItemRequest("AMOX-500", 6)]
    )
    assert prescription_return(order_id=order) == 1
    assert prescription_return(order_id=order) == 0
    assert dispensed(prescription) == 0


def test_prescriptions_and_the_register_refuse_deletion():
    prescription = prescription_with([("AMOX-500", 10)])
    with pytest.raises(RegulatoryRecordError):
        prescription.delete()
    with pytest.raises(RegulatoryRecordError):
        Prescription.objects.all().delete()
    with pytest.raises(RegulatoryRecordError):
        PrescriptionItem.objects.all().delete()
    with pytest.raises(RegulatoryRecordError):
        H1RegisterEntry.objects.all().delete()
    assert Prescription.objects.count() == 1


def test_h1_register_rows_are_written_once():
    prescription = prescription_with([("CEFI-200", 2)])
    order = uuid.uuid4()
    lines = [H1Line(sku="CEFI-200", drug_name="Cefixime 200 mg", batch="B1", quantity=2)]
    for _ in range(2):
        h1_register_record(
            order_id=order, order_number="COT-1", prescription_id=prescription.pk, lines=lines
        )
    entry = H1RegisterEntry.objects.get()
    assert (entry.patient_name, entry.doctor_registration_no, entry.batch) == (
        "A. Rao",
        "KMC-12345",
        "B1",
    )


@pytest.mark.django_db(transaction=True)
def test_two_orders_racing_for_the_last_quantity_never_both_get_it():
    prescription = prescription_with([("AMOX-500", 5)])
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        try:
            barrier.wait()
            results.append(
                prescription_dispense(
                    order_id=uuid.uuid4(),
                    prescription_id=prescription.pk,
                    lines=[RxItemRequest("AMOX-500", 3)],
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert dispensed(prescription) == 3
