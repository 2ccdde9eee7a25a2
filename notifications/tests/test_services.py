import pytest

from core.http import ExternalUnavailable
from core.tests.factories import ApiClientFactory
from notifications.models import Notification
from notifications.services import notification_mark_failed, notification_send_sms
from orders.tests.factories import place_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(demo_catalog):
    return place_order(ApiClientFactory(), items=[("PARA-500", 1)])


def test_sms_is_sent_once_per_order_and_event(simulator, order):
    notification_send_sms(order_id=order.pk, event_type="order.confirmed")
    notification_send_sms(order_id=order.pk, event_type="order.confirmed")
    messages = simulator.ledger()["messages"]
    assert len(messages) == 1
    assert order.number in messages[0]["text"]
    assert Notification.objects.get(order_id=order.pk).status == "sent"
    assert order.events.filter(type="notification.sent").count() == 1


def test_events_without_a_template_send_nothing(simulator, order):
    assert notification_send_sms(order_id=order.pk, event_type="inventory.reserved") is None
    assert simulator.ledger()["messages"] == []


def test_provider_down_raises_then_failure_is_recorded_once(simulator, order):
    simulator.control("notify", down=True)
    with pytest.raises(ExternalUnavailable):
        notification_send_sms(order_id=order.pk, event_type="order.rejected")
    notification_mark_failed(order_id=order.pk, event_type="order.rejected")
    notification_mark_failed(order_id=order.pk, event_type="order.rejected")
    assert Notification.objects.get(order_id=order.pk).status == "failed"
    assert order.events.filter(type="notification.failed").count() == 1
