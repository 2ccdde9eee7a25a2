import threading
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from core.tests.factories import ApiClientFactory
from notifications.models import Notification, NotificationTemplate
from notifications.services.messages import notification_mark_failed, notification_send
from notifications.tasks import notify_customer
from orders.tests.factories import ADDRESS, place_order

EMAIL = "a.rao@example.com"


@pytest.fixture
def order(demo_catalog):
    return place_order(
        ApiClientFactory(), items=[("PARA-500", 2)], delivery_address={**ADDRESS, "email": EMAIL}
    )


def messages_for(simulator, order, event):
    key = f"order:{order.pk}:notify:{event}:"
    return [m for m in simulator.ledger()["messages"] if m["idempotency_key"].startswith(key)]


@pytest.mark.django_db
def test_sms_and_email_are_sent_once_when_the_task_is_delivered_twice(simulator, order):
    notify_customer.apply(args=(str(order.pk), "order.confirmed"))
    notify_customer.apply(args=(str(order.pk), "order.confirmed"))

    sent = messages_for(simulator, order, "order.confirmed")
    assert sorted((m["channel"], m["to"]) for m in sent) == [
        ("email", EMAIL),
        ("sms", ADDRESS["phone"]),
    ]
    sms = next(m for m in sent if m["channel"] == "sms")
    email = next(m for m in sent if m["channel"] == "email")
    assert order.number in sms["text"] and "INR 60.00" in sms["text"]
    assert email["subject"] == f"Your order {order.number} is confirmed"
    assert "Paracetamol" in email["text"] and "x 2" in email["text"]
    assert set(Notification.objects.filter(order_id=order.pk).values_list("status", flat=True)) == {
        "sent"
    }
    events = order.events.filter(type="notification.sent")
    assert sorted(e.data["channel"] for e in events) == ["email", "sms"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_the_task_send_each_message_once(simulator, order):
    def run():
        try:
            notify_customer.apply(args=(str(order.pk), "order.cancelled"))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(m["channel"] for m in messages_for(simulator, order, "order.cancelled")) == [
        "email",
        "sms",
    ]
    rows = Notification.objects.filter(order_id=order.pk, event_type="order.cancelled")
    assert [n.status for n in rows] == ["sent", "sent"]
    assert order.events.filter(type="notification.sent", data__event="order.cancelled").count() == 2


@pytest.mark.django_db
def test_no_email_without_an_address_and_nothing_for_other_events(simulator, demo_catalog):
    order = place_order(ApiClientFactory(), items=[("PARA-500", 1)])
    notify_customer.apply(args=(str(order.pk), "order.confirmed"))
    # Not told: the shipment's own messages say it (`order.shipped`, `order.delivered`).
    for event in ("inventory.reserved", "order.shipped", "order.delivered"):
        notify_customer.apply(args=(str(order.pk), event))
    assert [m["channel"] for m in messages_for(simulator, order, "order.confirmed")] == ["sms"]
    assert Notification.objects.filter(order_id=order.pk).count() == 1


@pytest.mark.django_db
def test_an_edited_template_is_what_the_customer_gets(simulator, order):
    template = NotificationTemplate.objects.get(event_type="order.confirmed", channel="sms")
    template.body = "{{ name }}: {{ number }} left the warehouse with {{ items|length }} item(s)."
    template.full_clean()
    template.save()

    notification_send(order_id=order.pk, event_type="order.confirmed", channel="sms")

    [sms] = messages_for(simulator, order, "order.confirmed")
    assert sms["text"] == f"A. Rao: {order.number} left the warehouse with 1 item(s)."


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        "{% if %}broken",  # does not compile
        '{% include "secrets.txt" %}',  # no loaders: fails when rendered
        "{% load static %}{{ number }}",  # no tag libraries
        "   ",  # renders to nothing
    ],
)
def test_a_broken_or_switched_off_template_falls_back_to_the_default(simulator, order, body):
    NotificationTemplate.objects.filter(event_type="order.confirmed", channel="sms").update(
        body=body
    )
    NotificationTemplate.objects.filter(event_type="order.confirmed", channel="email").update(
        active=False, subject="Never {{ number }}"
    )

    notify_customer.apply(args=(str(order.pk), "order.confirmed"))

    sent = {m["channel"]: m for m in messages_for(simulator, order, "order.confirmed")}
    assert sent["sms"]["text"] == (
        f"Your order {order.number} (INR 60.00) is confirmed and will be delivered soon."
    )
    assert sent["email"]["subject"] == f"Your order {order.number} is confirmed"


@pytest.mark.django_db
def test_admin_validation_refuses_a_template_that_does_not_render():
    template = NotificationTemplate(
        event_type="order.confirmed", channel="email", body="{% for x %}"
    )
    with pytest.raises(ValidationError) as error:
        template.full_clean(exclude=["event_type", "channel"])
    assert {"body", "subject"} <= set(error.value.message_dict)


@pytest.mark.django_db
def test_provider_down_retries_then_records_the_failure_once_and_leaves_the_order(simulator, order):
    simulator.control("notify", down=True)

    notify_customer.apply(args=(str(order.pk), "order.rejected"))  # eager: retries inline

    assert messages_for(simulator, order, "order.rejected") == []
    rows = Notification.objects.filter(order_id=order.pk)
    assert {(n.channel, n.status) for n in rows} == {("sms", "failed"), ("email", "failed")}
    assert all(n.attempts == notify_customer.max_retries + 1 for n in rows)
    assert order.events.filter(type="notification.failed").count() == 2
    assert notification_mark_failed(order_id=order.pk, event_type="order.rejected") == 0
    order.refresh_from_db()
    assert order.status == "received"


@pytest.mark.django_db
def test_the_order_api_accepts_an_optional_email_and_validates_it(client, demo_catalog):
    from core.tests.factories import api_key_for
    from orders.tests.factories import ORDER_BODY

    headers = {"HTTP_AUTHORIZATION": f"Api-Key {api_key_for(ApiClientFactory())}"}
    bad = {**ORDER_BODY, "delivery_address": {**ADDRESS, "email": "not-an-address"}}
    response = client.post("/api/v1/orders/", bad, content_type="application/json", **headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "delivery_address.email"

    good = {**ORDER_BODY, "delivery_address": {**ADDRESS, "email": EMAIL}}
    response = client.post("/api/v1/orders/", good, content_type="application/json", **headers)
    assert response.status_code == 202, response.content
    assert response.json()["delivery_address"]["email"] == EMAIL


@pytest.mark.django_db
def test_templates_are_edited_in_admin_and_a_broken_edit_is_refused(admin_client):
    template = NotificationTemplate.objects.get(event_type="order.confirmed", channel="sms")
    url = f"/admin/notifications/notificationtemplate/{template.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200 and b"{{ number }}" in page.content
    form = {"event_type": "order.confirmed", "channel": "sms", "active": "on", "subject": ""}

    response = admin_client.post(url, {**form, "body": "{% if %}"})
    assert response.status_code == 200 and b"does not render" in response.content
    response = admin_client.post(url, {**form, "body": "Confirmed: {{ number }}"})
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.body == "Confirmed: {{ number }}"


@pytest.mark.django_db
def test_a_template_edit_shows_within_seconds(monkeypatch):
    from notifications import caching
    from notifications.selectors import TEMPLATES_SECONDS, notification_templates_active

    def sms():
        return notification_templates_active()[("order.confirmed", "sms")].body

    before = sms()
    NotificationTemplate.objects.filter(event_type="order.confirmed", channel="sms").update(
        body="Shipped: {{ number }}"
    )
    assert sms() == before  # this worker read the templates moments ago
    later = caching.monotonic() + TEMPLATES_SECONDS
    monkeypatch.setattr(caching, "monotonic", lambda: later)
    assert sms() == "Shipped: {{ number }}"


def test_every_notified_event_has_a_default_on_every_channel():
    from notifications.enums import NOTIFIED_EVENTS, NotificationChannel
    from notifications.messages import DEFAULTS

    assert set(DEFAULTS) == {
        (event, channel) for event in NOTIFIED_EVENTS for channel in NotificationChannel.values
    }


@pytest.mark.django_db
def test_a_message_s_own_events_start_no_message(order, django_capture_on_commit_callbacks):
    from orders.services.transitions import order_event_record

    with (
        mock.patch("notifications.receivers.notify_customer") as notify,
        django_capture_on_commit_callbacks(execute=True),
    ):
        recorded = [
            order_event_record(
                order_id=order.pk, type=event, data={"channel": "sms", "event": "order.confirmed"}
            )
            for event in ("notification.sent", "notification.failed", "order.confirmed")
        ]

    assert [c.args for c in notify.delay.call_args_list] == [
        (str(order.pk), "order.confirmed", recorded[-1].pk)
    ]


@pytest.mark.django_db
def test_a_sender_that_loses_the_race_to_make_the_row_sends_the_winners_text(simulator, order):
    from notifications.services.messages import _send

    # Another sender made the row (and was then delayed) after this one read no row.
    Notification.objects.create(
        order_id=order.pk, event_type="order.confirmed", channel="sms", to="+1", text="first"
    )

    _send(
        order_id=order.pk,
        event_type="order.confirmed",
        channel="sms",
        key=0,
        notification=None,
        order=lambda: order,
    )

    [sms] = messages_for(simulator, order, "order.confirmed")
    assert (sms["to"], sms["text"]) == ("+1", "first")
    row = Notification.objects.get(order_id=order.pk)
    assert (row.status, row.attempts) == ("sent", 1)
    assert order.events.filter(type="notification.sent").count() == 1


@pytest.mark.django_db
def test_the_sweeper_sends_what_a_lost_task_never_did_and_a_lost_retry_left_pending(
    simulator, order
):
    from datetime import timedelta

    from django.utils import timezone

    from notifications.tasks import notification_sweep
    from orders.models import OrderEvent
    from orders.services.transitions import order_event_record

    # The event committed, but its task never reached the broker (no on_commit runs here).
    event = order_event_record(order_id=order.pk, type="order.confirmed")
    assert notification_sweep.apply().get() == 0  # young: its own task may still come
    OrderEvent.objects.filter(pk=event.pk).update(at=timezone.now() - timedelta(minutes=2))

    assert notification_sweep.apply().get() == 1  # eager: the message task ran
    assert len(messages_for(simulator, order, "order.confirmed")) == 2
    assert set(Notification.objects.filter(order_id=order.pk).values_list("status", flat=True)) == {
        "sent"
    }
    assert notification_sweep.apply().get() == 0

    # A message left pending whose retry was lost (a Redis that restarted empty).
    sms = Notification.objects.get(order_id=order.pk, channel="sms")
    Notification.objects.filter(pk=sms.pk).update(status="pending")
    assert notification_sweep.apply().get() == 0  # touched moments ago: a retry is due
    Notification.objects.filter(pk=sms.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert notification_sweep.apply().get() == 1
    sms.refresh_from_db()
    assert (sms.status, sms.attempts) == ("sent", 2)
    # The provider de-duplicates by the message's idempotency key: still one SMS.
    assert len(messages_for(simulator, order, "order.confirmed")) == 2
    assert order.events.filter(type="notification.sent").count() == 3  # the resend's own


def test_the_notification_sweep_runs_on_beat_in_the_maintenance_queue():
    from celery import current_app as app
    from django.conf import settings

    entry = app.conf.beat_schedule["notification-outbox-sweep"]
    assert entry["task"] == "notifications.notification_sweep"
    assert entry["schedule"] == settings.COT_SWEEP_INTERVAL_SECONDS
    assert app.amqp.router.route({}, "notifications.notification_sweep")["queue"].name == (
        "maintenance"
    )


@pytest.mark.django_db
def test_ops_send_a_message_again_with_a_new_key_and_its_old_text(
    simulator, order, client, django_capture_on_commit_callbacks
):
    from django.contrib.auth.models import Group, User

    from orders.roles import roles_sync

    notify_customer.apply(args=(str(order.pk), "order.confirmed"))
    sms = Notification.objects.get(order_id=order.pk, event_type="order.confirmed", channel="sms")
    roles_sync()
    for role, allowed in (("pharmacist", False), ("ops", True)):
        user = User.objects.create_user(f"u-{role}", password="x", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        form = {"action": "resend_messages", "_selected_action": [sms.pk]}
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/admin/notifications/notification/", form)
        assert response.status_code == (302 if allowed else 403)
    sent = [m for m in messages_for(simulator, order, "order.confirmed") if m["channel"] == "sms"]
    assert [m["idempotency_key"].rsplit(":", 2)[-2:] for m in sent] == [
        ["order.confirmed", "sms"],
        ["resend", "1"],
    ]
    assert sent[0]["text"] == sent[1]["text"]
    sms.refresh_from_db()
    assert (sms.status, sms.resends, sms.resent_by) == ("sent", 1, "ops:u-ops")
    resent = order.events.filter(type="notification.sent", data__resent_by="ops:u-ops")
    assert resent.count() == 1
