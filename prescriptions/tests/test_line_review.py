"""A pharmacist's decision line by line: through the API, its refusals (nothing written),
and two pharmacists at once. What a struck-out line does to orders:
orders/tests/test_struck_out_lines.py."""

import threading

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from prescriptions.enums import PrescriptionStatus
from prescriptions.models import Prescription, PrescriptionItem
from prescriptions.services import AlreadyReviewed, prescription_review
from prescriptions.tests.factories import prescription_with
from prescriptions.tests.test_api import staff

URL = "/api/v1/prescriptions/{}/review/"
LINES = [("CEFI-200", 4), ("AMOX-500", 10)]


def pending(**kwargs):
    return prescription_with(LINES, status=PrescriptionStatus.PENDING_REVIEW, **kwargs)


def items(prescription):
    return list(
        PrescriptionItem.objects.filter(prescription=prescription)
        .order_by("pk")
        .values_list("sku", "decision", "rejection_reason")
    )


@pytest.mark.django_db
def test_a_partial_review_strikes_out_one_line_and_approves_the_rest(demo_catalog):
    prescription = pending()
    pharmacist = staff("ph-1", "pharmacist")
    body = {
        "decision": "partial",
        "note": "cefixime dose not legible",
        "lines": [{"sku": "CEFI-200", "decision": "rejected", "reason": "dose_unclear"}],
    }
    response = pharmacist.post(URL.format(prescription.pk), body, format="json")
    assert response.status_code == 200, response.content
    shown = response.json()
    assert shown["status"] == "approved"
    assert [(i["sku"], i["decision"], i["rejection_reason"]) for i in shown["items"]] == [
        ("CEFI-200", "rejected", "dose_unclear"),
        ("AMOX-500", "approved", None),
    ]
    assert items(prescription) == [
        ("CEFI-200", "rejected", "dose_unclear"),
        ("AMOX-500", "approved", ""),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        ({"decision": "partial", "lines": []}, "lines", "invalid"),
        (
            {"decision": "partial", "lines": [{"sku": "CEFI-200", "decision": "rejected"}]},
            "lines.0.reason",
            "invalid",
        ),
        (
            {"decision": "partial", "lines": [{"sku": "PARA-500", "decision": "approved"}]},
            "lines",
            "unknown_line",
        ),
        (
            {
                "decision": "approved",
                "lines": [{"sku": "CEFI-200", "decision": "rejected", "reason": "other"}],
            },
            "lines",
            "invalid",
        ),
        ({"decision": "partial", "lines": [{"sku": "CEFI-200", "decision": "maybe"}]}, None, None),
    ],
)
def test_a_review_that_does_not_fit_is_400_and_writes_nothing(demo_catalog, body, attr, code):
    prescription = pending()
    response = staff("ph-1", "pharmacist").post(URL.format(prescription.pk), body, format="json")
    assert response.status_code == 400, response.content
    if attr:
        error = response.json()["errors"][0]
        assert (error["attr"], error["code"]) == (attr, code), error
    assert Prescription.objects.get(pk=prescription.pk).status == "pending_review"
    assert {d for _, d, _ in items(prescription)} == {""}


@pytest.mark.django_db
def test_every_line_rejected_rejects_the_prescription_and_a_second_decision_is_409(
    demo_catalog,
):
    prescription = pending()
    pharmacist = staff("ph-1", "pharmacist")
    body = {
        "decision": "partial",
        "lines": [
            {"sku": "CEFI-200", "decision": "rejected", "reason": "illegible"},
            {"sku": "AMOX-500", "decision": "rejected", "reason": "patient_mismatch"},
        ],
    }
    assert pharmacist.post(URL.format(prescription.pk), body, format="json").json()["status"] == (
        "rejected"
    )
    again = pharmacist.post(URL.format(prescription.pk), {"decision": "approved"}, format="json")
    assert again.status_code == 409
    assert again.json()["errors"][0]["code"] == "already_reviewed"
    assert items(prescription)[1] == ("AMOX-500", "rejected", "patient_mismatch")


@pytest.mark.django_db(transaction=True)
def test_two_pharmacists_at_once_make_one_decision(demo_catalog):
    prescription = pending()
    roles = Group.objects.get(name="pharmacist")
    users = [User.objects.create_user(f"ph-{n}", is_staff=True) for n in range(2)]
    for user in users:
        user.groups.add(roles)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def decide(user: User, decision: str) -> None:
        try:
            barrier.wait()
            prescription_review(prescription_id=prescription.pk, reviewer=user, decision=decision)
            outcomes.append(decision)
        except AlreadyReviewed:
            outcomes.append("409")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=(users[0], "approved")),
        threading.Thread(target=decide, args=(users[1], "rejected")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes)[0] == "409" and len(outcomes) == 2
    decided = Prescription.objects.get(pk=prescription.pk)
    assert decided.status == next(o for o in outcomes if o != "409")
    assert {d for _, d, _ in items(prescription)} == {decided.status}
