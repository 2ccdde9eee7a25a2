import uuid

import pytest

from prescriptions.enums import H1EntryType
from prescriptions.models import (
    Dispensation,
    DispensationGiveBack,
    H1RegisterEntry,
    PrescriptionItem,
)
from prescriptions.services import (
    H1Line,
    ReturnedUnit,
    RxItemRequest,
    h1_register_record,
    prescription_dispense,
    prescription_return,
    prescription_units_returned,
)
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db


def item(prescription, sku="AMOX-500"):
    return PrescriptionItem.objects.get(prescription=prescription, sku=sku)


def dispensed_order(items, claims):
    """A prescription with `items` and an order that claimed `claims` from it."""
    prescription = prescription_with(items)
    order = uuid.uuid4()
    assert prescription_dispense(
        order_id=order,
        prescription_id=prescription.pk,
        lines=[RxItemRequest(sku, quantity) for sku, quantity in claims],
    )
    return prescription, order


def give_back(order, lines, reference="rto:shipment-1"):
    return prescription_units_returned(
        order_id=order,
        order_number="COT-00000042",
        reference=reference,
        lines=[ReturnedUnit(sku, batch, quantity) for sku, batch, quantity in lines],
    )


def test_partial_give_back_restores_what_remains_on_the_prescription():
    prescription, order = dispensed_order([("AMOX-500", 10)], [("AMOX-500", 6)])
    assert item(prescription).remaining == 4

    assert give_back(order, [("AMOX-500", "B1", 2)]) == 2

    assert item(prescription).remaining == 6
    dispensation = Dispensation.objects.get(order_id=order)
    assert (dispensation.quantity, dispensation.returned_quantity, dispensation.returned) == (
        6,
        2,
        False,
    )
    give_back_row = DispensationGiveBack.objects.get()
    assert (give_back_row.reference, give_back_row.quantity) == ("rto:shipment-1", 2)


def test_replaying_the_same_event_changes_nothing_and_another_event_gives_back_more():
    prescription, order = dispensed_order([("AMOX-500", 10)], [("AMOX-500", 6)])
    assert give_back(order, [("AMOX-500", "B1", 2)]) == 2
    assert give_back(order, [("AMOX-500", "B1", 2)]) == 0
    assert item(prescription).dispensed_quantity == 4

    assert give_back(order, [("AMOX-500", "B1", 1)], reference="customer-return:7") == 1
    assert item(prescription).dispensed_quantity == 3
    assert DispensationGiveBack.objects.count() == 2


def test_give_back_is_clamped_to_what_the_order_still_claims():
    prescription, order = dispensed_order([("AMOX-500", 10)], [("AMOX-500", 6)])
    # Another order's claim on the same item must not be given back by this one.
    other = uuid.uuid4()
    prescription_dispense(
        order_id=other, prescription_id=prescription.pk, lines=[RxItemRequest("AMOX-500", 3)]
    )
    assert give_back(order, [("AMOX-500", "B1", 4)]) == 4
    # Two batches of the same sku: 5 more units asked for, only 2 still claimed.
    assert give_back(order, [("AMOX-500", "B1", 2), ("AMOX-500", "B2", 3)], "rto:2") == 2
    assert give_back(order, [("AMOX-500", "B1", 1)], reference="rto:3") == 0

    assert item(prescription).dispensed_quantity == 3  # the other order's claim, intact
    dispensation = Dispensation.objects.get(order_id=order)
    assert (dispensation.returned_quantity, dispensation.returned) == (6, True)
    with pytest.raises(ValueError):
        ReturnedUnit("AMOX-500", "B1", -1)


def test_skus_not_dispensed_against_the_prescription_are_skipped():
    prescription, order = dispensed_order([("AMOX-500", 10)], [("AMOX-500", 6)])
    assert give_back(order, [("PARA-500", "P1", 3), ("AMOX-500", "B1", 1)]) == 1
    assert give_back(uuid.uuid4(), [("PARA-500", "P1", 3)]) == 0  # an all-OTC order
    assert item(prescription).dispensed_quantity == 5
    assert DispensationGiveBack.objects.count() == 1


def test_h1_return_row_is_written_beside_the_original_once():
    prescription, order = dispensed_order([("CEFI-200", 4)], [("CEFI-200", 4)])
    h1_register_record(
        order_id=order,
        order_number="COT-00000042",
        prescription_id=prescription.pk,
        lines=[
            H1Line(sku="CEFI-200", drug_name="Cefixime 200 mg", batch="B1", quantity=3),
            H1Line(sku="CEFI-200", drug_name="Cefixime 200 mg", batch="B2", quantity=1),
        ],
    )
    original = H1RegisterEntry.objects.get(batch="B1")
    before = {f.name: getattr(original, f.name) for f in H1RegisterEntry._meta.fields}

    for _ in range(2):
        give_back(order, [("CEFI-200", "B1", 2), ("CEFI-200", "B9", 1)])

    returned = H1RegisterEntry.objects.get(entry_type=H1EntryType.RETURNED)
    assert (
        returned.order_id,
        returned.order_number,
        returned.sku,
        returned.batch,
        returned.quantity,
        returned.reference,
        returned.prescription_id,
        returned.patient_name,
        returned.doctor_name,
        returned.doctor_registration_no,
        returned.drug_name,
    ) == (
        order,
        "COT-00000042",
        "CEFI-200",
        "B1",
        2,
        "rto:shipment-1",
        prescription.pk,
        "A. Rao",
        "Dr. B. Iyer",
        "KMC-12345",
        "Cefixime 200 mg",
    )
    original.refresh_from_db()
    assert {f.name: getattr(original, f.name) for f in H1RegisterEntry._meta.fields} == before
    assert (original.entry_type, original.reference) == (H1EntryType.DISPENSED, "")

    # A later event records no more than the batch's dispensed quantity still unreturned.
    give_back(order, [("CEFI-200", "B1", 5)], reference="customer-return:9")
    quantities = H1RegisterEntry.objects.filter(batch="B1").values_list(
        "entry_type", "reference", "quantity"
    )
    assert sorted(quantities) == [
        ("dispensed", "", 3),
        ("returned", "customer-return:9", 1),
        ("returned", "rto:shipment-1", 2),
    ]
    # Recording the dispensed rows again still writes nothing new.
    h1_register_record(
        order_id=order,
        order_number="COT-00000042",
        prescription_id=prescription.pk,
        lines=[H1Line(sku="CEFI-200", drug_name="Cefixime 200 mg", batch="B1", quantity=3)],
    )
    assert H1RegisterEntry.objects.count() == 4


def test_whole_order_return_after_a_partial_give_back_gives_back_only_the_rest():
    prescription, order = dispensed_order(
        [("AMOX-500", 10), ("CEFI-200", 4)], [("AMOX-500", 6), ("CEFI-200", 2)]
    )
    give_back(order, [("AMOX-500", "B1", 2)])

    assert prescription_return(order_id=order) == 2
    assert prescription_return(order_id=order) == 0
    assert (
        item(prescription).dispensed_quantity,
        item(prescription, "CEFI-200").dispensed_quantity,
    ) == (0, 0)
    assert all(
        d.returned and d.returned_quantity == d.quantity
        for d in Dispensation.objects.filter(order_id=order)
    )
    # Units arriving after the whole order was given back have nothing left to give back.
    assert give_back(order, [("AMOX-500", "B1", 1)], reference="rto:late") == 0
    assert item(prescription).dispensed_quantity == 0
