"""Keys and webhook secrets rotated with a grace period, and the client's own webhook
deliveries, against the live stack over HTTP."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from django.core.management import call_command
from django.utils import timezone

from notifications.tests.receiver import WebhookReceiver, webhook_receiver
from notifications.tests.test_webhook_docs import snippet
from tests.e2e.conftest import Stack
from tests.e2e.test_notifications_webhooks import place_and_confirm, wait_until

pytestmark = pytest.mark.e2e
DELIVERIES = "/api/v1/webhook-deliveries/"


def manage(django_db_blocker, *args: str) -> str:
    """Run a management command on the stack's database, as ops would; its output."""
    out = io.StringIO()
    with django_db_blocker.unblock():
        call_command(*args, stdout=out)
    return out.getvalue().strip()


def http(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Api-Key {key}"}, timeout=10
    )


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def hooked(live_stack: Stack, receiver: WebhookReceiver, django_db_blocker) -> dict[str, str]:
    from core.tests.factories import ApiClientFactory, api_key_for
    from notifications.receivers import WEBHOOK_CLIENTS_SECONDS

    with django_db_blocker.unblock():
        client = ApiClientFactory(
            name=f"e2e-rotating-{uuid.uuid4().hex[:8]}", webhook_url=receiver.url
        )
        key = api_key_for(client)
    time.sleep(WEBHOOK_CLIENTS_SECONDS)  # the live processes learn of the new URL
    return {"name": client.name, "key": key, "secret": client.webhook_secret}


def test_the_old_key_works_during_the_grace_period_and_is_refused_after(stack, django_db_blocker):
    from core.models import ClientAPIKey
    from core.tests.factories import ApiClientFactory, api_key_for

    with django_db_blocker.unblock():
        client = ApiClientFactory(name=f"e2e-keys-{uuid.uuid4().hex[:8]}")
        old = api_key_for(client)
    new = manage(django_db_blocker, "rotate_api_key", client.name, "--grace-hours", "24")

    def status(key: str) -> int:
        with http(stack, key) as api:
            return api.get("/api/v1/orders/").status_code

    assert (status(old), status(new)) == (200, 200)
    with django_db_blocker.unblock():  # the 24 hours are over
        ClientAPIKey.objects.filter(prefix=old.partition(".")[0]).update(
            expiry_date=timezone.now() - timedelta(seconds=1)
        )
    assert (status(old), status(new)) == (401, 200)


def test_during_a_secret_rotation_a_receiver_accepts_with_either_secret(
    stack, hooked, receiver, django_db_blocker
):
    old = hooked["secret"]
    new = manage(django_db_blocker, "rotate_webhook_secret", hooked["name"])
    order = place_and_confirm(stack, hooked["key"])
    wait_until(lambda: len(receiver.events(order["id"])) >= len(order["events"]))

    namespace: dict = {}
    exec(snippet("python", "def cot_signature_valid"), namespace)  # noqa: S102
    verify = namespace["cot_signature_valid"]
    posts = [r for r in receiver.received if r.json["order_id"] == order["id"]]
    assert posts and all(len(r.signature.split(",")) == 2 for r in posts)
    for secret in (new, old, "not-the-secret"):  # a receiver that knows one of them
        assert [verify(r.body, r.signature, secret) for r in posts] == [
            secret != "not-the-secret"
        ] * len(posts)


def test_the_client_lists_a_failed_delivery_and_resends_it(
    stack, hooked, receiver, django_db_blocker
):
    from notifications.models import WebhookDelivery

    receiver.script = [500] * 100_000  # the client's endpoint is down
    order = place_and_confirm(stack, hooked["key"])
    api = http(stack, hooked["key"])
    mine = {"order_id": order["id"]}

    def deliveries(**filters: str) -> list[dict]:
        response = api.get(DELIVERIES, params={**mine, **filters})
        assert response.status_code == 200, response.text
        return response.json()["results"]

    wait_until(lambda: any(d["last_status_code"] == 500 for d in deliveries()))
    head = min(deliveries(), key=lambda d: d["event_id"])
    assert (head["status"], head["type"]) == ("pending", "order.received")
    with django_db_blocker.unblock():  # its retry window is over
        WebhookDelivery.objects.filter(pk=head["id"]).update(
            first_attempt_at=timezone.now() - timedelta(days=2)
        )
    wait_until(lambda: [d["id"] for d in deliveries(status="failed")] == [head["id"]])

    receiver.script.clear()  # the endpoint is back: the order's later events go out
    wait_until(lambda: all(d["status"] == "delivered" for d in deliveries()[:-1]))
    [failed] = deliveries(status="failed")
    assert (failed["last_status_code"], failed["next_attempt_at"]) == (500, None)

    with http(stack, stack.keys["web"]) as stranger:  # another client's: not found
        assert stranger.post(f"{DELIVERIES}{head['id']}/resend/").status_code == 404
        assert head["id"] not in [d["id"] for d in stranger.get(DELIVERIES).json()["results"]]

    resent = api.post(f"{DELIVERIES}{head['id']}/resend/")
    assert resent.status_code == 200, resent.text
    assert (resent.json()["status"], resent.json()["attempts"]) == ("pending", 0)
    wait_until(lambda: not deliveries(status="failed") and not deliveries(status="pending"))
    assert receiver.events(order["id"])[-1]["id"] == head["event_id"]
    api.close()
