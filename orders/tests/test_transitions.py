import pytest
from django.db.models import ProtectedError

from core.tests.factories import ApiClientFactory
from orders.enums import EventType, OrderStatus, Step
from orders.models import Order, OrderEvent, OrderStep, TimelineDeletion
from orders.services.transitions import (
    TRANSITIONS,
    InvalidTransition,
    order_event_committed,
    order_event_record,
    order_step_record,
    order_transition,
)
from orders.tests.factories import place_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(demo_catalog):
    return place_order(ApiClientFactory(), items=[("PARA-500", 1)])


def test_every_status_has_a_row_and_terminal_ones_lead_nowhere():
    assert set(TRANSITIONS) == set(OrderStatus.values)
    for status in ("delivered", "rejected", "payment_failed", "cancelled"):
        assert TRANSITIONS[status] == frozenset()


def test_a_move_appends_its_event_in_the_same_transaction(order):
    assert order_transition(order=order, to=OrderStatus.PROCESSING)
    assert order_transition(order=order, to=OrderStatus.REJECTED, failure_reason="out_of_stock")
    order.refresh_from_db()
    assert (order.status, order.failure_reason) == ("rejected", "out_of_stock")
    assert list(order.events.values_list("type", flat=True)) == [
        "order.received",
        "order.processing",
        "order.rejected",
    ]
    assert order.events.last().data == {"reason": "out_of_stock"}


def test_the_table_forbids_moves_it_does_not_list(order):
    with pytest.raises(InvalidTransition):
        order_transition(order=order, to=OrderStatus.SHIPPED)
    order.refresh_from_db()
    assert order.status == OrderStatus.RECEIVED


def test_compare_and_set_lets_only_the_first_of_two_actors_move(order):
    stale = Order.objects.get(pk=order.pk)
    assert order_transition(order=order, to=OrderStatus.PROCESSING)
    assert not order_transition(order=stale, to=OrderStatus.PROCESSING)
    assert order.events.filter(type="order.processing").count() == 1


def test_a_step_outcome_is_recorded_once_with_its_events_in_order(
    order, django_capture_on_commit_callbacks
):
    step = OrderStep.objects.create(order=order, step=Step.SHIPMENT, attempts=1)
    events = [
        (EventType.SHIPMENT_BOOKED, {"center": "BLR-1", "awb": "A-1"}),
        (EventType.SHIPMENT_BOOKED, {"center": "DEL-1", "awb": "A-2"}),
    ]
    announced = []

    def receiver(**kwargs):
        announced.append((kwargs["event_id"], kwargs["event_type"]))

    order_event_committed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            recorded = order_step_record(
                step=step, ok=True, result="booked", data={}, events=events
            )
            # A second run that finished too: its outcome and events are not recorded.
            again = order_step_record(step=step, ok=False, result="x", data={}, events=events)
            assert again is False
    finally:
        order_event_committed.disconnect(receiver)
    assert recorded is True
    step.refresh_from_db()
    assert (step.ok, step.result) == (True, "booked")
    booked = list(order.events.filter(type="shipment.booked").values_list("id", "data"))
    assert [data for _, data in booked] == [data for _, data in events]
    assert announced == [(event_id, "shipment.booked") for event_id, _ in booked]


def test_an_orders_timeline_is_never_deleted(order):
    event = order_event_record(order_id=order.pk, type=EventType.ORDER_PROCESSING)
    with pytest.raises(TimelineDeletion):
        event.delete()
    with pytest.raises(TimelineDeletion):
        OrderEvent.objects.filter(order=order).delete()
    with pytest.raises(ProtectedError):
        Order.objects.get(pk=order.pk).delete()  # its events would go with it
    assert OrderEvent.objects.filter(pk=event.pk).exists()
