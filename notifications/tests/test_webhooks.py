"""Outbound webhooks against a real HTTP endpoint (notifications.tests.receiver)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from core.tests.factories import ApiClientFactory
from notifications.models import WebhookDelivery
from notifications.services.webhooks import webhook_order_pump
from notifications.tasks import webhook_sweep
from notifications.tests.receiver import webhook_receiver
from orders.models import OrderEvent
from orders.services.transitions import order_event_record
from orders.tests.factories import place_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def hooked(receiver):
    return ApiClientFactory(webhook_url=receiver.url)


@pytest.fixture
def order(demo_catalog, hooked):
    # In a `db` test on_commit never fires: the events are committed (for the test) but
    # no pump was enqueued — the crash between commit and enqueue, every time.
    order = place_order(hooked, items=[("PARA-500", 1)])
    order_event_record(order_id=order.pk, type="order.processing")
    order_event_record(order_id=order.pk, type="inventory.reserved", data={"lines": 1})
    return order


def timeline(order):
    return list(OrderEvent.objects.filter(order=order).order_by("pk"))


def make_due(order):
    WebhookDelivery.objects.filter(order=order, status="pending").update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_every_event_is_posted_signed_in_timeline_order(receiver, hooked, order):
    webhook_order_pump(order_id=order.pk)

    events = timeline(order)
    assert [e["id"] for e in receiver.events()] == [e.pk for e in events]
    first = receiver.events()[0]
    assert set(first) == {"id", "type", "order_id", "at", "data"}
    assert (first["type"], first["order_id"]) == (events[0].type, str(order.pk))
    assert receiver.events()[-1]["data"] == {"lines": 1}
    assert receiver.all_signed_by(hooked.webhook_secret)
    assert not receiver.all_signed_by("another-secret")
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}

    webhook_order_pump(order_id=order.pk)  # a redelivered pump sends nothing again
    assert len(receiver.received) == len(events)
    # The receiver set a cookie with every answer; no delivery sent one back.
    assert [r.cookie for r in receiver.received] == [None] * len(events)


def test_a_500_is_retried_and_nothing_later_overtakes_it(receiver, order):
    receiver.script = [500]

    webhook_order_pump(order_id=order.pk)

    head = WebhookDelivery.objects.get(event=timeline(order)[0])
    assert (head.status, head.attempts, head.last_error) == ("pending", 1, "HTTP 500")
    assert head.next_attempt_at > timezone.now()
    assert len(receiver.received) == 1  # the next events wait for the first
    webhook_order_pump(order_id=order.pk)  # not due yet: nothing is sent
    assert len(receiver.received) == 1

    make_due(order)
    webhook_order_pump(order_id=order.pk)

    ids = [e["id"] for e in receiver.events()]
    assert ids == [ids[0]] + [e.pk for e in timeline(order)]
    assert [(a.number, a.status_code) for a in head.tries.all()] == [(1, 500), (2, 200)]


def test_attempts_are_bounded_then_the_next_event_goes_and_ops_can_resend(
    receiver, order, settings, admin_client
):
    settings.COT_WEBHOOK_MAX_ATTEMPTS = 2
    receiver.script = [500, 503]
    webhook_order_pump(order_id=order.pk)
    make_due(order)
    webhook_order_pump(order_id=order.pk)

    first = WebhookDelivery.objects.get(event=timeline(order)[0])
    assert (first.status, first.attempts) == ("failed", 2)
    assert WebhookDelivery.objects.filter(order=order, status="delivered").count() == (
        len(timeline(order)) - 1
    )

    page = admin_client.get(f"/admin/notifications/webhookdelivery/{first.pk}/change/")
    assert page.status_code == 200 and b"HTTP 503" in page.content
    response = admin_client.post(
        "/admin/notifications/webhookdelivery/",
        {"action": "resend", "_selected_action": [first.pk]},
    )
    assert response.status_code == 302
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("delivered", 1)  # eager: the pump ran
    assert [e["id"] for e in receiver.events()][-1] == first.event_id


def test_the_sweeper_finds_events_nobody_pumped_and_stalled_retries(receiver, order):
    assert webhook_sweep.apply().get() == 1

    assert [e["id"] for e in receiver.events()] == [e.pk for e in timeline(order)]
    event = order_event_record(order_id=order.pk, type="payment.prepared")
    receiver.script = [500]
    webhook_sweep.apply()  # eager: the scheduled retry ran at once, before it was due
    assert WebhookDelivery.objects.get(event=event).status == "pending"

    make_due(order)  # its retry task was lost
    webhook_sweep.apply()
    assert WebhookDelivery.objects.get(event=event).status == "delivered"
    assert webhook_sweep.apply().get() == 0


def test_clients_without_a_url_get_nothing_and_bad_urls_fail_at_once(receiver, demo_catalog):
    quiet = place_order(ApiClientFactory(), items=[("PARA-500", 1)])
    webhook_order_pump(order_id=quiet.pk)
    assert not WebhookDelivery.objects.filter(order=quiet).exists()

    odd = place_order(ApiClientFactory(webhook_url="file:///etc/passwd"), items=[("PARA-500", 1)])
    webhook_order_pump(order_id=odd.pk)
    assert set(WebhookDelivery.objects.filter(order=odd).values_list("status", flat=True)) == {
        "failed"
    }
    assert receiver.received == []


def test_only_ops_with_the_permission_may_resend(client, order):
    from orders.roles import roles_sync

    roles_sync()
    webhook_order_pump(order_id=order.pk)
    delivery = WebhookDelivery.objects.filter(order=order).first()
    for role, allowed in (("ops", True), ("pharmacist", False)):
        user = User.objects.create_user(role, password="x", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        page = client.get("/admin/notifications/webhookdelivery/")
        assert page.status_code == (200 if allowed else 403)
        if allowed:
            assert b'value="resend"' in page.content
            assert (
                client.get(
                    f"/admin/notifications/webhookdelivery/{delivery.pk}/change/"
                ).status_code
                == 200
            )


def test_a_client_given_a_url_later_gets_every_event_through_the_sweeper(
    receiver, demo_catalog, django_capture_on_commit_callbacks, monkeypatch
):
    from core.models import ApiClient
    from notifications import caching
    from notifications.receivers import WEBHOOK_CLIENTS_SECONDS

    client = ApiClientFactory()
    order = place_order(client, items=[("PARA-500", 1)])
    with django_capture_on_commit_callbacks(execute=True):  # the receivers run
        order_event_record(order_id=order.pk, type="order.processing")
    # The URL is set by another process (admin): this one still believes no client has
    # one, so its receivers enqueue no pump for the next event.
    ApiClient.objects.filter(pk=client.pk).update(webhook_url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        order_event_record(order_id=order.pk, type="inventory.reserved")
    assert receiver.received == []

    webhook_sweep.apply()  # beat's next sweep: delayed, not lost

    assert [e["id"] for e in receiver.events()] == [e.pk for e in timeline(order)]
    later = caching.monotonic() + WEBHOOK_CLIENTS_SECONDS
    monkeypatch.setattr(caching, "monotonic", lambda: later)
    with django_capture_on_commit_callbacks(execute=True):  # seconds later: pumped at once
        event = order_event_record(order_id=order.pk, type="payment.prepared")
    assert receiver.events()[-1]["id"] == event.pk
    assert len(receiver.received) == len(timeline(order))
