"""The pharmacist's review queue in admin: the longest wait first (from the first waiting
order's hold, else the upload), the SLA flag, claims (two pharmacists never both decide),
the review page, who may do what, the dashboard tile and the metrics."""

import datetime
import io
import re
import threading

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for, metrics_auth_header
from prescriptions.enums import PrescriptionStatus
from prescriptions.models import Prescription, PrescriptionItem
from prescriptions.services import prescription_claim, prescription_unclaim
from prescriptions.tests.factories import prescription_with

ADMIN = "/admin/prescriptions/prescription/"
QUEUE = f"{ADMIN}queue/"
PENDING = PrescriptionStatus.PENDING_REVIEW
LINES = [("CEFI-200", 4), ("AMOX-500", 10)]


def staff(username, role):
    user = User.objects.create_user(username, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return user, client


def pending(ago=datetime.timedelta(0), **kwargs):
    prescription = prescription_with(LINES, status=PENDING, **kwargs)
    Prescription.objects.filter(pk=prescription.pk).update(created_at=timezone.now() - ago)
    prescription.refresh_from_db()
    return prescription


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def review_seconds_count():
    return REGISTRY.get_sample_value("cot_rx_review_seconds_count") or 0


ADDRESS = {
    "name": "A. Rao",
    "line1": "12 MG Road",
    "city": "Bengaluru",
    "state": "KA",
    "pincode": "560001",
    "phone": "+919800000001",
}


@pytest.fixture
def hold(demo_catalog, simulator, settings, django_capture_on_commit_callbacks):
    """Place a real order on a pending prescription, through the API (prescriptions never
    import orders, their tests neither): it goes on hold. Returns its number."""
    settings.COT_PIPELINE_MODE = "inline"
    shop = ApiClientFactory()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(shop)}")

    def place(prescription, items=(("AMOX-500", 2),)):
        Prescription.objects.filter(pk=prescription.pk).update(client=shop)
        body = {
            "customer_id": prescription.customer_id,
            "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items],
            "prescription_id": str(prescription.pk),
            "delivery_address": ADDRESS,
            "payment_method": "upi",
            "payment_token": "tok_ok",
        }
        with django_capture_on_commit_callbacks(execute=True):
            placed = api.post("/api/v1/orders/", body, format="json")
        assert placed.status_code == 202, placed.content
        order = api.get(placed["Location"]).json()
        assert order["status"] == "on_hold"
        return order["number"]

    return place


@pytest.mark.django_db
def test_the_queue_shows_the_longest_wait_first_counted_from_the_first_hold(hold):
    hours = datetime.timedelta(hours=1)
    two_orders = pending(3 * hours, patient_name="Two orders")
    first = hold(two_orders)
    second = hold(two_orders)
    # Uploaded first, but its order has waited least: the hold counts, not the upload.
    uploaded_early = pending(6 * hours, patient_name="Uploaded early")
    hold(uploaded_early)
    no_order = pending(4 * hours, patient_name="No order")  # waits since its upload
    just_in = pending(patient_name="Just in")
    prescription_with(LINES, patient_name="Decided")  # approved: not in the queue

    _, client = staff("ph", "pharmacist")
    page = client.get(QUEUE)

    assert page.status_code == 200
    entries = page.context["entries"]
    assert [e.prescription.pk for e in entries] == [
        no_order.pk,
        two_orders.pk,
        uploaded_early.pk,
        just_in.pk,
    ]
    by_pk = {e.prescription.pk: e for e in entries}
    assert [o.number for o in by_pk[two_orders.pk].waiting_orders] == [first, second]
    assert by_pk[uploaded_early.pk].wait < datetime.timedelta(minutes=1)
    assert by_pk[no_order.pk].waiting_orders == []
    assert abs(by_pk[no_order.pk].wait - 4 * hours) < datetime.timedelta(minutes=1)
    html = page.content.decode()
    rows = re.findall(r'data-prescription="([0-9a-f-]+)"', html)
    assert rows == [str(e.prescription.pk) for e in entries]
    assert first in html and second in html
    assert "Decided" not in html


@pytest.mark.django_db
def test_a_wait_past_the_sla_is_flagged_in_words_and_by_class(settings):
    settings.COT_REVIEW_SLA_SECONDS = 1800
    late = pending(datetime.timedelta(minutes=31))
    in_time = pending(datetime.timedelta(minutes=10))

    html = staff("ph", "pharmacist")[1].get(QUEUE).content.decode()

    def row(prescription):
        return re.search(
            rf'<tr class="([^"]*)" data-prescription="{prescription.pk}">(.*?)</tr>', html, re.S
        )

    assert "over-sla" in row(late).group(1) and "over SLA" in row(late).group(2)
    assert "over-sla" not in row(in_time).group(1) and "over SLA" not in row(in_time).group(2)


@pytest.mark.django_db
def test_claims_are_one_pharmacists_at_a_time_and_a_stale_one_may_be_taken_over(settings):
    settings.COT_REVIEW_SLA_SECONDS = 1800
    prescription = pending()
    asha, _ = staff("asha", "pharmacist")
    ravi, _ = staff("ravi", "pharmacist")

    assert prescription_claim(prescription_id=prescription.pk, user=asha)
    assert prescription_claim(prescription_id=prescription.pk, user=asha)  # renewed
    assert not prescription_claim(prescription_id=prescription.pk, user=ravi)
    assert not prescription_unclaim(prescription_id=prescription.pk, user=ravi)
    assert Prescription.objects.get(pk=prescription.pk).claimed_by == asha

    # Asha walked away: past the SLA, Ravi may take it over.
    Prescription.objects.filter(pk=prescription.pk).update(
        claimed_at=timezone.now() - datetime.timedelta(minutes=31)
    )
    assert prescription_claim(prescription_id=prescription.pk, user=ravi)
    assert not prescription_unclaim(prescription_id=prescription.pk, user=asha)
    assert prescription_unclaim(prescription_id=prescription.pk, user=ravi)
    assert Prescription.objects.get(pk=prescription.pk).claimed_by is None

    decided = prescription_with(LINES)
    assert not prescription_claim(prescription_id=decided.pk, user=asha)


@pytest.mark.django_db(transaction=True)
def test_two_pharmacists_claiming_at_once_one_gets_it(demo_catalog):
    prescription = pending()
    users = [staff(f"ph-{n}", "pharmacist")[0] for n in range(2)]
    barrier = threading.Barrier(2)
    won: dict[str, bool] = {}

    def claim(user):
        try:
            barrier.wait()
            won[user.username] = prescription_claim(prescription_id=prescription.pk, user=user)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(won.values()) == [False, True]
    winner = next(name for name, ok in won.items() if ok)
    assert Prescription.objects.get(pk=prescription.pk).claimed_by.username == winner


@pytest.mark.django_db(transaction=True)
def test_two_pharmacists_deciding_at_once_in_admin_make_one_decision(demo_catalog):
    prescription = pending()
    clients = [staff(f"ph-{n}", "pharmacist")[1] for n in range(2)]
    barrier = threading.Barrier(2)
    said: list[list[str]] = []

    def decide(client, decision):
        try:
            barrier.wait()
            response = client.post(
                f"{ADMIN}{prescription.pk}/review/", {"decision": decision}, follow=True
            )
            # Read from the page: the test client's captured context is shared by threads.
            said.append(
                re.findall(r'<ul class="messagelist">(.*?)</ul>', response.content.decode(), re.S)
            )
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=(clients[0], "approved")),
        threading.Thread(target=decide, args=(clients[1], "rejected")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    decided = Prescription.objects.get(pk=prescription.pk)
    assert decided.status in ("approved", "rejected")
    words = sorted(" ".join(m) for m in said)
    assert len(words) == 2, words
    # One was told it is done; the other that someone else has it or decided it.
    assert sum(f": {decided.status}" in w for w in words) == 1
    assert sum("being reviewed by" in w or "already decided by" in w for w in words) == 1
    assert {
        d
        for d in PrescriptionItem.objects.filter(prescription=decided).values_list(
            "decision", flat=True
        )
    } == {decided.status}


@pytest.mark.django_db
def test_a_claimed_prescription_is_refused_to_another_pharmacist_then_decided_per_line():
    prescription = pending()
    asha, asha_client = staff("asha", "pharmacist")
    _, ravi_client = staff("ravi", "pharmacist")
    review = f"{ADMIN}{prescription.pk}/review/"

    claimed = asha_client.post(f"{ADMIN}{prescription.pk}/claim/")
    assert claimed.status_code == 302 and claimed.url == review

    # Ravi's queue says who is on it; his claim and his decision are refused.
    queue = ravi_client.get(QUEUE).content.decode()
    assert "asha" in queue and "being reviewed" in queue
    refused = ravi_client.post(f"{ADMIN}{prescription.pk}/claim/", follow=True)
    assert any("being reviewed by asha" in m for m in messages_of(refused))
    refused = ravi_client.post(review, {"decision": "approved"}, follow=True)
    assert any("being reviewed by asha" in m for m in messages_of(refused))
    assert Prescription.objects.get(pk=prescription.pk).status == PENDING
    assert b"Approve all" not in ravi_client.get(review).content

    # Asha's page: the first line's control has the focus, the buttons their keys.
    page = asha_client.get(review).content.decode()
    cefi, amox = PrescriptionItem.objects.filter(prescription=prescription).order_by("pk")
    assert re.search(rf'<select name="line-{cefi.pk}-decision"[^>]*autofocus', page)
    for label, key in (("Approve all", "a"), ("Reject all", "r"), ("Decide per line", "s")):
        assert re.search(rf'accesskey="{key}"[^>]*>{label}</button>', page), label
    assert re.search(rf'<label[^>]*for="id_line-{cefi.pk}-reason"', page)

    # A rejected line needs its reason: the page says so and nothing is written.
    per_line = {
        "decision": "partial",
        f"line-{cefi.pk}-decision": "rejected",
        f"line-{amox.pk}-decision": "approved",
        "note": "cefixime dose not legible",
    }
    again = asha_client.post(review, per_line)
    assert again.status_code == 200 and "Say why this line is rejected." in again.content.decode()
    assert Prescription.objects.get(pk=prescription.pk).status == PENDING

    done = asha_client.post(review, {**per_line, f"line-{cefi.pk}-reason": "dose_unclear"})
    assert done.status_code == 302 and done.url == QUEUE
    decided = Prescription.objects.get(pk=prescription.pk)
    assert (decided.status, decided.reviewed_by, decided.claimed_by) == ("approved", asha, None)
    assert list(
        decided.items.order_by("pk").values_list("sku", "decision", "rejection_reason")
    ) == [("CEFI-200", "rejected", "dose_unclear"), ("AMOX-500", "approved", "")]
    shown = asha_client.get(QUEUE)
    assert messages_of(shown) == [
        f"Prescription {str(decided.pk)[:8]}: approved; struck out: CEFI-200 (dose unclear)."
    ]

    late = ravi_client.post(review, {"decision": "rejected"}, follow=True)
    assert any("already decided by asha (approved" in m for m in messages_of(late))
    assert Prescription.objects.get(pk=prescription.pk).status == "approved"


@pytest.mark.django_db
def test_reject_all_keeps_the_reasons_given_and_rejects_the_rest_as_other():
    prescription = pending()
    _, client = staff("ph", "pharmacist")
    cefi = prescription.items.get(sku="CEFI-200")
    response = client.post(
        f"{ADMIN}{prescription.pk}/review/",
        {"decision": "rejected", f"line-{cefi.pk}-reason": "illegible"},
    )
    assert response.status_code == 302
    assert Prescription.objects.get(pk=prescription.pk).status == "rejected"
    assert list(
        prescription.items.order_by("pk").values_list("sku", "decision", "rejection_reason")
    ) == [("CEFI-200", "rejected", "illegible"), ("AMOX-500", "rejected", "other")]


@pytest.mark.django_db
def test_a_bulk_action_leaves_alone_what_another_pharmacist_is_reviewing():
    theirs, free = pending(), pending()
    asha, _ = staff("asha", "pharmacist")
    _, ravi_client = staff("ravi", "pharmacist")
    assert prescription_claim(prescription_id=theirs.pk, user=asha)
    response = ravi_client.post(
        ADMIN,
        {
            "action": "approve_selected",
            "_selected_action": [theirs.pk, free.pk],
            "confirm": "yes",
            "note": "",
        },
        follow=True,
    )
    assert (
        "Approved 1; already reviewed, left alone: 0. Being reviewed by another pharmacist, "
        "left alone: 1." in messages_of(response)
    )
    assert Prescription.objects.get(pk=theirs.pk).status == PENDING
    assert Prescription.objects.get(pk=free.pk).status == "approved"


@pytest.mark.django_db
def test_ops_see_the_queue_but_cannot_claim_or_review():
    prescription = pending()
    _, ops = staff("ops-1", "ops")
    page = ops.get(QUEUE)
    assert page.status_code == 200 and str(prescription.pk) in page.content.decode()
    assert b"Claim and review" not in page.content
    assert ops.post(f"{ADMIN}{prescription.pk}/claim/").status_code == 403
    assert ops.post(f"{ADMIN}{prescription.pk}/unclaim/").status_code == 403
    assert ops.get(f"{ADMIN}{prescription.pk}/review/").status_code == 403
    assert ops.post(f"{ADMIN}{prescription.pk}/review/", {"decision": "approved"}).status_code == (
        403
    )
    assert Prescription.objects.get(pk=prescription.pk).claimed_by is None
    _, inventory = staff("inv-1", "inventory")
    assert inventory.get(QUEUE).status_code == 403


@pytest.mark.django_db
def test_the_image_is_beside_the_lines_inline_or_embedded_and_served_privately(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    png, pdf = pending(), pending()
    png.image.save("rx.png", io.BytesIO(b"\x89PNG\r\n\x1a\n123"))
    pdf.image.save("rx.pdf", io.BytesIO(b"%PDF-1.4\n%%EOF"))
    _, client = staff("ph", "pharmacist")

    page = client.get(f"{ADMIN}{png.pk}/review/").content.decode()
    assert f'<img src="{ADMIN}{png.pk}/image/"' in page
    page = client.get(f"{ADMIN}{pdf.pk}/review/").content.decode()
    assert f'<object data="{ADMIN}{pdf.pk}/image/" type="application/pdf"' in page
    served = client.get(f"{ADMIN}{pdf.pk}/image/")
    assert b"".join(served.streaming_content).startswith(b"%PDF")
    assert {"private", "no-store"} <= set(served["Cache-Control"].split(", "))
    assert served["X-Frame-Options"] == "SAMEORIGIN"  # embeddable by the review page only
    assert Client().get(f"{ADMIN}{pdf.pk}/image/").status_code == 302  # to the login


@pytest.mark.django_db
def test_the_dashboard_tile_and_the_metrics_count_the_queue(
    settings, django_capture_on_commit_callbacks
):
    settings.COT_REVIEW_SLA_SECONDS = 1800
    oldest = pending(datetime.timedelta(hours=2))
    pending(datetime.timedelta(minutes=5))
    _, ops = staff("ops-1", "ops")

    tile = ops.get("/admin/orders/order/dashboard/").content.decode()
    tile = re.search(r'<p id="review-queue-tile".*?</p>', tile, re.S).group(0)
    assert "<strong" in tile and ">2</strong> pending review" in tile
    assert "1 over SLA" in tile and "2\xa0hours" in tile and QUEUE in tile

    metrics = Client().get("/metrics", **metrics_auth_header()).content.decode()
    assert "\ncot_rx_pending_reviews 2.0\n" in metrics
    oldest_wait = float(re.search(r"\ncot_rx_oldest_wait_seconds (\S+)\n", metrics).group(1))
    assert 7200 <= oldest_wait < 7260

    # A decision in admin is observed once, with its wait (from the upload: no order waits).
    before = review_seconds_count()
    before_2h = REGISTRY.get_sample_value("cot_rx_review_seconds_bucket", {"le": "7200.0"})
    _, pharmacist = staff("ph", "pharmacist")
    with django_capture_on_commit_callbacks(execute=True):
        pharmacist.post(f"{ADMIN}{oldest.pk}/review/", {"decision": "approved"})
    assert review_seconds_count() == before + 1
    # Two hours and a few seconds: above the 7200 s bucket's bound.
    assert REGISTRY.get_sample_value("cot_rx_review_seconds_bucket", {"le": "7200.0"}) == (
        before_2h
    )
    assert (
        "\ncot_rx_pending_reviews 1.0\n"
        in Client().get("/metrics", **metrics_auth_header()).content.decode()
    )


@pytest.mark.django_db
def test_the_queue_is_linked_from_the_prescriptions_pages():
    _, client = staff("ph", "pharmacist")
    assert QUEUE.encode() in client.get("/admin/prescriptions/").content
    assert QUEUE.encode() in client.get(ADMIN).content
