"""The client's webhook deliveries over the API: its own only, filtered and paged, and a
resend."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from notifications.models import WebhookDelivery
from notifications.services.webhooks import webhook_order_pump
from notifications.tests.receiver import webhook_receiver
from orders.services.transitions import order_event_record
from orders.tests.factories import place_order

pytestmark = pytest.mark.django_db
URL = "/api/v1/webhook-deliveries/"
FIELDS = {
    "id",
    "event_id",
    "type",
    "order_id",
    "status",
    "attempts",
    "last_status_code",
    "last_error",
    "next_attempt_at",
    "first_attempt_at",
    "delivered_at",
    "created_at",
}


@pytest.fixture
def receiver():
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def hooked(receiver):
    return ApiClientFactory(webhook_url=receiver.url)


def api(client) -> APIClient:
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(client)}")
    return http


@pytest.fixture
def failed(demo_catalog, hooked, receiver, settings):
    """An order whose first event failed for good (its receiver answered 500 for the
    whole retry window) and whose later events were delivered."""
    order = place_order(hooked, items=[("PARA-500", 1)])
    order_event_record(order_id=order.pk, type="order.processing")
    settings.COT_WEBHOOK_RETRY_WINDOW_SECONDS = 0
    receiver.script = [500]
    webhook_order_pump(order_id=order.pk)
    return WebhookDelivery.objects.get(order=order, status="failed")


def test_the_client_lists_its_own_deliveries_newest_first_with_filters(
    hooked, failed, demo_catalog
):
    other = ApiClientFactory(webhook_url=hooked.webhook_url)
    webhook_order_pump(order_id=place_order(other, items=[("PARA-500", 1)]).pk)

    page = api(hooked).get(URL).json()

    ours = WebhookDelivery.objects.filter(client=hooked).order_by("-id")
    assert [d["id"] for d in page["results"]] == [d.pk for d in ours]
    assert page["next"] is None and set(page["results"][0]) == FIELDS
    [row] = api(hooked).get(URL, {"status": "failed"}).json()["results"]
    assert row == {
        **row,
        "id": failed.pk,
        "event_id": failed.event_id,
        "type": "order.received",
        "order_id": str(failed.order_id),
        "status": "failed",
        "attempts": 1,
        "last_status_code": 500,
        "last_error": "HTTP 500",
        "next_attempt_at": None,
    }
    by_order = api(hooked).get(URL, {"order_id": str(failed.order_id)}).json()["results"]
    assert {d["order_id"] for d in by_order} == {str(failed.order_id)}
    assert (
        api(hooked).get(URL, {"order_id": "00000000-0000-0000-0000-000000000000"}).json()["results"]
        == []
    )


def test_pages_follow_the_cursor_and_bad_filters_are_400(hooked, failed):
    http = api(hooked)
    first = http.get(URL, {"page_size": 1}).json()
    second = http.get(first["next"]).json()
    assert [len(first["results"]), len(second["results"])] == [1, 1]
    assert first["results"][0]["id"] > second["results"][0]["id"]

    bad = http.get(URL, {"status": "lost"})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["attr"] == "status"
    assert http.get(URL, {"order_id": "nope"}).status_code == 400
    assert http.get(URL, {"cursor": "garbage"}).status_code == 404


def test_a_failed_delivery_is_resent_and_delivered(
    hooked, failed, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # the pump runs (eagerly)
        response = api(hooked).post(f"{URL}{failed.pk}/resend/")

    assert response.status_code == 200
    assert response.json()["status"] == "pending"  # as answered, before the pump ran
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.last_status_code) == ("delivered", 1, 200)
    assert receiver.events()[-1]["id"] == failed.event_id


def test_resending_a_pending_delivery_changes_nothing(hooked, failed, receiver):
    WebhookDelivery.objects.filter(pk=failed.pk).update(
        status="pending", attempts=3, next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    before = len(receiver.received)

    response = api(hooked).post(f"{URL}{failed.pk}/resend/", {}, format="json")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["attempts"]) == ("pending", 3)
    assert len(receiver.received) == before


def test_another_clients_delivery_is_not_found_and_bad_requests_change_nothing(
    hooked, failed, client, django_user_model
):
    stranger = api(ApiClientFactory())
    assert stranger.post(f"{URL}{failed.pk}/resend/").status_code == 404
    assert failed.pk not in [d["id"] for d in stranger.get(URL).json()["results"]]
    assert api(hooked).post(f"{URL}{2**70}/resend/").status_code == 404
    unknown = api(hooked).post(f"{URL}{failed.pk}/resend/", {"now": True}, format="json")
    assert (unknown.status_code, unknown.json()["errors"][0]["code"]) == (400, "unknown_field")
    assert APIClient().get(URL).status_code == 401
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    assert client.get(URL).status_code == 403
    assert WebhookDelivery.objects.get(pk=failed.pk).status == "failed"


def test_the_schema_describes_both_operations_field_by_field(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    listing = schema["paths"]["/api/v1/webhook-deliveries/"]["get"]
    resend = schema["paths"]["/api/v1/webhook-deliveries/{delivery_id}/resend/"]["post"]
    assert {p["name"] for p in listing["parameters"]} >= {"status", "order_id", "cursor"}
    page = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    delivery = resend["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    components = schema["components"]["schemas"]
    assert set(components[page.rsplit("/", 1)[1]]["properties"]) == {"next", "previous", "results"}
    assert set(components[delivery.rsplit("/", 1)[1]]["properties"]) == FIELDS
    assert "404" in resend["responses"]
