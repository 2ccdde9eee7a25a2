import datetime

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from prescriptions.enums import PrescriptionStatus
from prescriptions.models import H1RegisterEntry, Prescription
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/prescriptions/prescription/"
PENDING = PrescriptionStatus.PENDING_REVIEW


def login(role):
    # The role groups exist from migrate (data migration and post_migrate sync).
    user = User.objects.create_user(f"u-{role}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def test_queue_lists_pending_first_oldest_first():
    decided = prescription_with([("AMOX-500", 1)], patient_name="Decided")
    newer = prescription_with([("AMOX-500", 1)], patient_name="Newer", status=PENDING)
    older = prescription_with([("AMOX-500", 1)], patient_name="Older", status=PENDING)
    Prescription.objects.filter(pk=older.pk).update(
        created_at=timezone.now() - datetime.timedelta(hours=5)
    )
    page = login("pharmacist").get(CHANGELIST)
    assert page.status_code == 200
    assert [p.pk for p in page.context["cl"].result_list] == [older.pk, newer.pk, decided.pk]


def test_review_page_approves_with_a_note_and_shows_the_image(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    prescription = prescription_with([("AMOX-500", 1)], status=PENDING)
    prescription.image.save("rx.png", __import__("io").BytesIO(b"\x89PNG\r\n\x1a\n123"))
    client = login("pharmacist")
    url = f"{CHANGELIST}{prescription.pk}/review/"
    assert url.encode() in client.get(f"{CHANGELIST}{prescription.pk}/change/").content
    page = client.get(url)
    assert page.status_code == 200 and b"/image/" in page.content
    image = client.get(f"{CHANGELIST}{prescription.pk}/image/")
    assert b"".join(image.streaming_content).startswith(b"\x89PNG")
    assert client.post(url, {"decision": "approved", "note": "dose fine"}).status_code == 302
    prescription.refresh_from_db()
    assert (prescription.status, prescription.review_note) == ("approved", "dose fine")
    detail = client.get(f"{CHANGELIST}{prescription.pk}/change/")
    assert detail.status_code == 200


def test_reject_action_asks_for_a_note_then_rejects_pending_only():
    pending = prescription_with([("AMOX-500", 1)], status=PENDING)
    approved = prescription_with([("AMOX-500", 1)])
    client = login("pharmacist")
    selection = {"action": "reject_selected", "_selected_action": [pending.pk, approved.pk]}
    confirm_page = client.post(CHANGELIST, selection)
    assert confirm_page.status_code == 200 and b"note" in confirm_page.content
    done = client.post(
        CHANGELIST, {**selection, "confirm": "yes", "note": "illegible"}, follow=True
    )
    assert b"Rejected 1; already reviewed, left alone: 1." in done.content
    pending.refresh_from_db()
    approved.refresh_from_db()
    assert (pending.status, pending.review_note) == ("rejected", "illegible")
    assert approved.status == "approved"


def test_ops_can_read_but_not_review():
    prescription = prescription_with([("AMOX-500", 1)], status=PENDING)
    client = login("ops")
    assert client.get(CHANGELIST).status_code == 200
    assert client.get(f"{CHANGELIST}{prescription.pk}/review/").status_code == 403
    client.post(
        CHANGELIST,
        {"action": "approve_selected", "_selected_action": [prescription.pk], "confirm": "yes"},
    )
    prescription.refresh_from_db()
    assert prescription.status == PENDING


def test_h1_register_exports_csv():
    prescription = prescription_with([("CEFI-200", 2)])
    entry = H1RegisterEntry.objects.create(
        order_id=prescription.pk,
        order_number="COT-00000042",
        prescription=prescription,
        patient_name="A. Rao",
        doctor_name="Dr. B. Iyer",
        doctor_registration_no="KMC-12345",
        sku="CEFI-200",
        drug_name="Cefixime 200 mg",
        batch="B7",
        quantity=2,
    )
    response = login("pharmacist").post(
        "/admin/prescriptions/h1registerentry/",
        {"action": "export_csv", "_selected_action": [entry.pk]},
    )
    assert response["Content-Type"] == "text/csv"
    rows = response.content.decode().splitlines()
    assert rows[0].startswith("date,order number,patient,prescriber,registration no")
    assert "COT-00000042,A. Rao,Dr. B. Iyer,KMC-12345,Cefixime 200 mg,CEFI-200,B7,2" in rows[1]
