"""Outbound webhooks against a real HTTP endpoint (notifications.tests.receiver)."""

import socket
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from core.tests.factories import ApiClientFactory
from core.webhooks import webhook_signature
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


def test_retries_end_with_the_window_then_the_next_event_goes_and_ops_can_resend(
    receiver, order, settings, admin_client
):
    settings.COT_WEBHOOK_RETRY_WINDOW_SECONDS = 600
    receiver.script = [500, 503]
    webhook_order_pump(order_id=order.pk)
    make_due(order)  # a retry inside the window: still pending after another failure
    webhook_order_pump(order_id=order.pk)
    first = WebhookDelivery.objects.get(event=timeline(order)[0])
    assert (first.status, first.attempts, first.last_status_code) == ("pending", 2, 503)

    receiver.script = [502]
    WebhookDelivery.objects.filter(pk=first.pk).update(
        first_attempt_at=timezone.now() - timedelta(seconds=601)
    )
    make_due(order)
    webhook_order_pump(order_id=order.pk)

    first.refresh_from_db()
    assert (first.status, first.attempts, first.last_status_code) == ("failed", 3, 502)
    assert WebhookDelivery.objects.filter(order=order, status="delivered").count() == (
        len(timeline(order)) - 1
    )

    page = admin_client.get(f"/admin/notifications/webhookdelivery/{first.pk}/change/")
    assert page.status_code == 200 and b"HTTP 502" in page.content
    response = admin_client.post(
        "/admin/notifications/webhookdelivery/",
        {"action": "resend", "_selected_action": [first.pk]},
    )
    assert response.status_code == 302
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("delivered", 1)  # eager: the pump ran
    assert first.first_attempt_at > timezone.now() - timedelta(seconds=60)  # a new window
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


def test_during_a_secret_rotation_deliveries_carry_both_signatures(receiver, hooked, order):
    from core.services import webhook_secret_rotate

    old = hooked.webhook_secret
    new = webhook_secret_rotate(client=hooked, grace=timedelta(hours=1))

    webhook_order_pump(order_id=order.pk)

    signatures = receiver.received[0].signature.split(",")
    assert [s.startswith("sha256=") for s in signatures] == [True, True]
    assert receiver.all_signed_by(new) and receiver.all_signed_by(old)
    assert signatures[0] == webhook_signature(new, receiver.received[0].body)  # new first

    # The grace period is over: the next delivery is signed with the new secret only.
    type(hooked).objects.filter(pk=hooked.pk).update(
        webhook_secret_previous_until=timezone.now() - timedelta(seconds=1)
    )
    event = order_event_record(order_id=order.pk, type="payment.prepared")
    webhook_order_pump(order_id=order.pk)
    [last] = [r for r in receiver.received if r.json["id"] == event.pk]
    assert last.signature == webhook_signature(new, last.body)


def test_a_url_refused_at_delivery_fails_the_attempt_and_is_retried(receiver, order, settings):
    # The client's URL was set where private webhooks were allowed, or its name now
    # resolves to a private address: nothing is sent, the attempt says why.
    settings.COT_ALLOW_PRIVATE_WEBHOOKS = False

    webhook_order_pump(order_id=order.pk)

    head = WebhookDelivery.objects.get(event=timeline(order)[0])
    assert (head.status, head.attempts, head.last_status_code) == ("pending", 1, None)
    assert head.last_error == "refused: the webhook URL must use https"
    assert head.next_attempt_at > timezone.now()
    assert receiver.received == []

    settings.COT_ALLOW_PRIVATE_WEBHOOKS = True  # fixed within the retry window
    make_due(order)
    webhook_order_pump(order_id=order.pk)
    assert [e["id"] for e in receiver.events()] == [e.pk for e in timeline(order)]


def test_the_post_goes_to_the_address_that_was_checked(receiver, order, monkeypatch):
    # DNS rebinding: the name resolves to an allowed address when checked, to another
    # right after. The POST must reach the checked one, with the name as Host.
    real = socket.getaddrinfo
    port = int(receiver.url.split(":")[2].split("/")[0])
    answers = iter(["127.0.0.1"])

    def resolve(host, *args, **kwargs):
        if host != "hooks.example.test":
            return real(host, *args, **kwargs)
        address = next(answers, "169.254.0.1")  # every later answer: link-local
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    order.client.webhook_url = f"http://hooks.example.test:{port}/hooks/cot"
    order.client.save(update_fields=["webhook_url"])

    webhook_order_pump(order_id=order.pk)

    # Had the HTTP client resolved the name again, it would have got the link-local one.
    [posted] = receiver.received
    assert posted.host == f"hooks.example.test:{port}"
    first, second = WebhookDelivery.objects.filter(order=order).order_by("event_id")[:2]
    assert first.status == "delivered"
    # The next delivery's check met the new answer: refused, nothing sent.
    assert second.status == "pending" and "link-local address (169.254.0.1)" in second.last_error


def test_the_last_retry_is_at_the_end_of_the_window_and_long_waits_stay_in_the_database(
    receiver, order, settings, monkeypatch
):
    from notifications.tasks import webhook_pump

    settings.COT_WEBHOOK_RETRY_WINDOW_SECONDS = 20
    settings.COT_WEBHOOK_RETRY_BASE_SECONDS = settings.COT_WEBHOOK_RETRY_MAX_SECONDS = 10_000
    receiver.script = [500]
    scheduled = []
    monkeypatch.setattr(webhook_pump, "apply_async", lambda *a, **kw: scheduled.append(kw))

    webhook_pump.apply(args=(str(order.pk),))

    head = WebhookDelivery.objects.get(event=timeline(order)[0])
    assert head.next_attempt_at <= head.first_attempt_at + timedelta(seconds=20)
    assert [round(kw["countdown"]) <= 20 for kw in scheduled] == [True]  # a short wait

    settings.COT_WEBHOOK_RETRY_WINDOW_SECONDS = 86400
    receiver.script = [500]
    make_due(order)
    webhook_pump.apply(args=(str(order.pk),))
    assert len(scheduled) == 1  # hours away: no countdown in the broker
    head.refresh_from_db()
    assert head.next_attempt_at > timezone.now() + timedelta(seconds=300)

    make_due(order)  # the sweeper pumps the order once it is due
    monkeypatch.undo()
    webhook_sweep.apply()
    assert WebhookDelivery.objects.get(pk=head.pk).status == "delivered"
