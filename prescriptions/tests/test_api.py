import datetime
import io
import json

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from prescriptions.models import Prescription

pytestmark = pytest.mark.django_db
URL = "/api/v1/prescriptions/"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
PDF = b"%PDF-1.4\n" + b"0" * 200
BODY = {
    "customer_id": "C-1001",
    "patient_name": "A. Rao",
    "doctor_name": "Dr. B. Iyer",
    "doctor_registration_no": "KMC-12345",
    "issued_on": "2026-11-20",
    "items": [{"sku": "AMOX-500", "quantity": 10}],
}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def key(demo_catalog):
    return api_key_for(ApiClientFactory())


def api(key=None):
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def create(key, **changes):
    return api(key).post(URL, data=json.dumps({**BODY, **changes}), content_type="application/json")


def upload(key, content, name="rx.png", **changes):
    data = {**BODY, **changes, "items": json.dumps(changes.get("items", BODY["items"]))}
    data["image"] = io.BytesIO(content)
    data["image"].name = name
    return api(key).post(URL, data=data, format="multipart")


def test_create_json_answers_201_pending_review(key):
    response = create(key)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending_review" and body["review"] is None
    assert body["items"] == [
        {
            "sku": "AMOX-500",
            "quantity": 10,
            "dispensed_quantity": 0,
            "decision": None,
            "rejection_reason": None,
        }
    ]
    assert api(key).get(f"{URL}{body['id']}/").json() == body


@pytest.mark.parametrize(
    ("content", "name"),
    [(PNG, "scan.png"), (PDF, "rx.bin"), (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "x.txt")],
)
def test_multipart_upload_of_an_image_checked_by_content(key, content, name):
    response = upload(key, content, name)
    assert response.status_code == 201, response.content
    assert response.json()["has_image"] is True
    prescription = Prescription.objects.get()
    assert prescription.image.read() == content
    assert name not in prescription.image.name  # stored under a generated name


@pytest.mark.parametrize(
    ("content", "name", "code"),
    [
        (b"GIF89a" + b"\x00" * 100, "rx.png", "unsupported_file_type"),
        (b"just text pretending", "rx.pdf", "unsupported_file_type"),
        (b"", "rx.png", "empty"),
    ],
)
def test_uploads_that_are_not_jpeg_png_or_pdf_are_refused(key, content, name, code):
    response = upload(key, content, name)
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        **response.json()["errors"][0],
        "attr": "image",
        "code": code,
    }
    assert not Prescription.objects.exists()


def test_an_image_over_5_mib_is_refused(key):
    response = upload(key, PNG + b"\x00" * (5 * 1024 * 1024))
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "too_large"
    too_big = upload(key, PNG + b"\x00" * (6 * 1024 * 1024))
    assert too_big.status_code == 413
    assert not Prescription.objects.exists()


@pytest.mark.parametrize(
    ("changes", "attr"),
    [
        (
            {"issued_on": (timezone.localdate() + datetime.timedelta(days=1)).isoformat()},
            "issued_on",
        ),
        ({"issued_on": "20-11-2026"}, "issued_on"),
        ({"doctor_registration_no": "call me"}, "doctor_registration_no"),
        ({"doctor_registration_no": "KMC"}, "doctor_registration_no"),
        ({"items": [{"sku": "NOPE", "quantity": 1}]}, "items.0.sku"),
        ({"items": [{"sku": "AMOX-500", "quantity": 1001}]}, "items.0.quantity"),
        ({"items": [{"sku": "AMOX-500", "quantity": 0}]}, "items.0.quantity"),
        ({"items": [{"sku": "AMOX-500", "quantity": 1}] * 2}, "items.1.sku"),
        ({"items": []}, "items"),
        ({"pharmacy": "x"}, "pharmacy"),
    ],
)
def test_bad_fields_are_400_and_write_nothing(key, changes, attr):
    response = create(key, **changes)
    assert response.status_code == 400
    assert attr in [e["attr"] for e in response.json()["errors"]]
    assert not Prescription.objects.exists()


def test_another_clients_prescription_is_404(key):
    prescription_id = create(key).json()["id"]
    other = api(api_key_for(ApiClientFactory()))
    assert other.get(f"{URL}{prescription_id}/").status_code == 404


def staff(username, role=None):
    user = User.objects.create_user(username, password="pw-123456789", is_staff=True)
    if role:
        # The role groups exist from migrate (data migration and post_migrate sync).
        user.groups.add(Group.objects.get(name=role))
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION="Basic "
        + __import__("base64").b64encode(f"{username}:pw-123456789".encode()).decode()
    )
    return client


def review(client, prescription_id, decision="approved", note="checked"):
    return client.post(
        f"{URL}{prescription_id}/review/", {"decision": decision, "note": note}, format="json"
    )


def test_only_pharmacists_review_and_only_once(key):
    prescription_id = create(key).json()["id"]
    assert review(APIClient(), prescription_id).status_code == 401
    assert review(api(key), prescription_id).status_code == 403
    assert review(staff("ops-1", "ops"), prescription_id).status_code == 403
    assert review(staff("plain"), prescription_id).status_code == 403
    pharmacist = staff("ph-1", "pharmacist")
    response = review(pharmacist, prescription_id)
    assert response.status_code == 200
    assert response.json()["status"] == "approved"
    assert response.json()["review"]["note"] == "checked"
    again = review(pharmacist, prescription_id, decision="rejected")
    assert again.status_code == 409
    assert again.json()["errors"][0]["code"] == "already_reviewed"
    assert review(pharmacist, "00000000-0000-0000-0000-000000000000").status_code == 404
    assert review(pharmacist, prescription_id, decision="maybe").status_code == 400
