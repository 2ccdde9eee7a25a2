"""The reservation-expiry job: unconfirmed orders past COT_RESERVATION_TTL_SECONDS end and
give their stock back; everything else is left alone. Real database and simulator."""

import datetime

import pytest
from celery import current_app as app
from django.utils import timezone

from core.tests.factories import ApiClientFactory
from inventory.enums import ReservationStatus
from inventory.models import Reservation, StockBatch
from orders.enums import OrderStatus
from orders.models import Order, OrderEvent, OrderStep
from orders.services import expiry, steps
from orders.services.expiry import order_expire_reservations
from orders.tests.factories import place_order
from payments.models import Payment

pytestmark = pytest.mark.django_db
TTL = 900


@pytest.fixture
def client(demo_catalog, simulator, settings):
    settings.COT_PIPELINE_MODE = "inline"
    settings.COT_RESERVATION_TTL_SECONDS = TTL
    return ApiClientFactory()


def reserved_order(client, sku="PARA-500", quantity=2, *, charge=False, age=TTL + 1):
    """An order whose pipeline stopped after the header steps (or the charge), with a
    reservation made `age` seconds ago."""
    order = place_order(client, items=[(sku, quantity)])  # on_commit never runs here
    steps.order_check_prescription(order.pk)
    steps.order_reserve_stock(order.pk)
    steps.order_prepare_payment(order.pk)
    if charge:
        steps.order_charge_payment(order.pk)
    Reservation.objects.filter(order_id=order.pk).update(
        created_at=timezone.now() - datetime.timedelta(seconds=age)
    )
    order.refresh_from_db()
    return order


def reserved_units():
    return sum(StockBatch.objects.values_list("reserved", flat=True))


def status_of(order):
    order.refresh_from_db()
    return order.status, order.failure_reason


def reservation_of(order):
    return Reservation.objects.get(order_id=order.pk).status


def expire(captured):
    with captured(execute=True):
        return order_expire_reservations()


def test_expired_unpaid_order_ends_payment_failed_voided_and_released(
    client, simulator, django_capture_on_commit_callbacks
):
    order = reserved_order(client)
    assert order.status == OrderStatus.PROCESSING and reserved_units() == 2

    assert expire(django_capture_on_commit_callbacks) == 1

    assert status_of(order) == ("payment_failed", "payment_unavailable")
    assert reservation_of(order) == ReservationStatus.RELEASED
    assert reserved_units() == 0
    assert Payment.objects.get(order_id=order.pk).status == "voided"
    released = OrderEvent.objects.get(order_id=order.pk, type="inventory.released")
    assert released.data == {"cause": "reservation_expired"}
    assert OrderEvent.objects.get(order_id=order.pk, type="payment.failed").data == {
        "cause": "reservation_expired",
        "reason": "payment_unavailable",
    }
    assert simulator.ledger()["charges"] == []


def test_expired_paid_order_is_cancelled_and_refunded(
    client, simulator, django_capture_on_commit_callbacks
):
    order = reserved_order(client, charge=True)
    assert Payment.objects.get(order_id=order.pk).status == "captured"

    assert expire(django_capture_on_commit_callbacks) == 1

    assert status_of(order) == ("cancelled", "fulfilment_unavailable")
    assert Payment.objects.get(order_id=order.pk).status == "refunded"
    assert len(simulator.ledger()["refunds"]) == 1
    assert reserved_units() == 0


def test_expiry_is_idempotent_and_a_late_pipeline_cannot_confirm(
    client, simulator, django_capture_on_commit_callbacks
):
    order = reserved_order(client)
    assert expire(django_capture_on_commit_callbacks) == 1
    assert expire(django_capture_on_commit_callbacks) == 0

    with django_capture_on_commit_callbacks(execute=True):
        steps.order_charge_payment(order.pk)
        steps.order_confirm(order.pk)

    assert status_of(order) == ("payment_failed", "payment_unavailable")
    events = list(OrderEvent.objects.filter(order_id=order.pk).values_list("type", flat=True))
    assert events.count("inventory.released") == 1 and events.count("payment.failed") == 1
    assert simulator.ledger()["charges"] == []


def test_an_order_whose_charge_is_in_flight_is_left_to_its_charge(
    client, simulator, django_capture_on_commit_callbacks
):
    # The charge step counted its run (its row exists, unfinished) and may be waiting on
    # the gateway: ending the order now as a failed payment could label a charged order.
    order = reserved_order(client)
    OrderStep.objects.create(order_id=order.pk, step="charge", attempts=1)

    assert expire(django_capture_on_commit_callbacks) == 0
    assert status_of(order) == ("processing", None)

    OrderStep.objects.filter(order_id=order.pk, step="charge").update(ok=True, result="captured")
    assert expire(django_capture_on_commit_callbacks) == 1
    assert status_of(order) == ("cancelled", "fulfilment_unavailable")


def test_young_on_hold_and_confirmed_reservations_are_left_alone(
    client, simulator, django_capture_on_commit_callbacks
):
    young = reserved_order(client, age=TTL - 60)
    on_hold = reserved_order(client)
    Order.objects.filter(pk=on_hold.pk).update(status=OrderStatus.ON_HOLD)
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = place_order(client, items=[("PARA-500", 1)])
    Reservation.objects.filter(order_id=confirmed.pk).update(
        created_at=timezone.now() - datetime.timedelta(seconds=TTL * 2)
    )

    assert expire(django_capture_on_commit_callbacks) == 0

    assert status_of(young) == ("processing", None)
    assert status_of(on_hold) == ("on_hold", None)
    assert status_of(confirmed) == ("confirmed", None)
    assert reservation_of(young) == reservation_of(on_hold) == ReservationStatus.HELD
    assert reservation_of(confirmed) == ReservationStatus.COMMITTED
    assert reserved_units() == 4


def test_stock_held_for_an_already_ended_order_is_released(
    client, simulator, django_capture_on_commit_callbacks
):
    # The stock step finished after the order had ended and released: a late reservation.
    order = reserved_order(client)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.CANCELLED)

    assert expire(django_capture_on_commit_callbacks) == 1

    assert reservation_of(order) == ReservationStatus.RELEASED and reserved_units() == 0
    assert OrderEvent.objects.filter(order_id=order.pk, type="inventory.released").count() == 1


def test_the_job_runs_on_beat_in_the_maintenance_queue(
    client, simulator, django_capture_on_commit_callbacks
):
    entry = app.conf.beat_schedule["expire-reservations"]
    assert entry["task"] == "orders.expire_reservations"
    assert app.amqp.router.route({}, entry["task"])["queue"].name == "maintenance"
    order = reserved_order(client)
    with django_capture_on_commit_callbacks(execute=True):
        app.tasks["orders.expire_reservations"].delay()
    assert status_of(order) == ("payment_failed", "payment_unavailable")


def test_reservations_left_alone_do_not_hide_the_rest_of_the_worklist(
    client, simulator, settings, django_capture_on_commit_callbacks, monkeypatch
):

    monkeypatch.setattr(expiry, "BATCH", 2)
    held = [reserved_order(client, quantity=1) for _ in range(3)]
    Order.objects.filter(pk__in=[o.pk for o in held]).update(status=OrderStatus.ON_HOLD)
    expired = reserved_order(client, quantity=1)  # the newest: on the second page

    assert expire(django_capture_on_commit_callbacks) == 1

    assert status_of(expired) == ("payment_failed", "payment_unavailable")
    assert [reservation_of(o) for o in held] == [ReservationStatus.HELD] * 3
