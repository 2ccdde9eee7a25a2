"""Races between a running step and the order ending under it (found in review)."""

import pytest
from django.db import OperationalError as DjangoOperationalError
from kombu.exceptions import OperationalError
from rest_framework.test import APIClient

from core.attempts import AttemptInProgress
from orders import tasks
from orders.enums import OrderStatus
from orders.models import Order, OrderStep
from orders.services import header_decision, steps
from orders.services.cancellation import OPS, order_cancel
from orders.services.ending import order_compensate, order_end
from orders.tasks import sweep_stuck_orders
from payments.models import Payment, PaymentAttempt
from payments.services import payment_cancel
from prescriptions.models import PrescriptionItem
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db


def test_a_prescription_claim_made_after_the_order_ended_is_returned(
    shop, place, monkeypatch, django_capture_on_commit_callbacks
):
    prescription = prescription_with([("AMOX-500", 10)], client=shop[0])
    real = header_decision.prescription_dispense

    def cancel_then_dispense(**kwargs):
        # The order is cancelled between the charge step's status check and its claim.
        with django_capture_on_commit_callbacks(execute=True):
            order_cancel(order=Order.objects.get(pk=kwargs["order_id"]), by=OPS, actor="t")
        return real(**kwargs)

    monkeypatch.setattr(header_decision, "prescription_dispense", cancel_then_dispense)
    order = place(items=[("AMOX-500", 4)], prescription_id=prescription.pk)
    assert order.status == OrderStatus.CANCELLED
    assert PrescriptionItem.objects.get().dispensed_quantity == 0


def test_a_charge_not_yet_written_when_the_order_ends_is_never_sent(
    shop, place, monkeypatch, django_capture_on_commit_callbacks, simulator
):
    # The charge writes its attempt already claimed, under the payment's row lock, so the
    # last moment a cancellation can stop it is before that lock: the payment is voided
    # and never charged. (A cancellation after it finds the charge in flight and refunds
    # what it took, as for any charge that lands after the order ended.)
    real = steps.payment_charge

    def cancel_then_charge(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            order_cancel(order=Order.objects.get(pk=kwargs["order_id"]), by=OPS, actor="t")
        return real(**kwargs)

    monkeypatch.setattr(steps, "payment_charge", cancel_then_charge)
    order = place(items=[("PARA-500", 1)])
    assert order.status == OrderStatus.CANCELLED
    assert Payment.objects.get(order_id=order.pk).status == "voided"
    assert not PaymentAttempt.objects.filter(payment__order_id=order.pk).exists()
    assert simulator.ledger()["charges"] == []


def test_a_charge_whose_order_ended_before_its_claim_is_never_sent_even_before_compensation(
    shop, place, monkeypatch, simulator
):
    # The order ends (its compensation not run yet, so the payment is still prepared)
    # between the charge step's status check and its claim: the claim locks the order
    # and finds it ended, so nothing is charged, and the step records why.
    real = steps.payment_charge

    def end_then_charge(**kwargs):
        order = Order.objects.get(pk=kwargs["order_id"])
        order_end(order=order, to=OrderStatus.CANCELLED, reason="out_of_stock")
        assert Payment.objects.get(order_id=order.pk).status == "prepared"
        return real(**kwargs)

    monkeypatch.setattr(steps, "payment_charge", end_then_charge)
    order = place(items=[("PARA-500", 1)])
    assert (order.status, order.failure_reason) == (OrderStatus.CANCELLED, "out_of_stock")
    assert not PaymentAttempt.objects.filter(payment__order_id=order.pk).exists()
    assert simulator.ledger()["charges"] == []
    charge = OrderStep.objects.get(order_id=order.pk, step="charge")
    assert (charge.ok, charge.result) == (False, "payment_unavailable")


def test_a_payment_voided_under_a_running_order_ends_it_as_a_failed_payment(
    shop, place, monkeypatch, simulator
):
    # Before, the charge step returned without recording anything, and the order waited
    # out the shipment step's retries to end as an unavailable fulfilment.
    real = steps.payment_charge

    def void_then_charge(**kwargs):
        Payment.objects.filter(order_id=kwargs["order_id"]).update(status="voided")
        return real(**kwargs)

    monkeypatch.setattr(steps, "payment_charge", void_then_charge)
    order = place(items=[("PARA-500", 1)])
    assert (order.status, order.failure_reason) == ("payment_failed", "payment_unavailable")
    assert simulator.ledger()["charges"] == []


def test_cancel_with_the_broker_down_answers_and_the_sweeper_compensates_later(
    shop, place, settings, monkeypatch, django_capture_on_commit_callbacks, simulator
):
    order = place(items=[("PARA-500", 1)])
    assert order.status == OrderStatus.CONFIRMED
    settings.COT_PIPELINE_MODE = "celery"

    def broker_down(*args, **kwargs):
        raise OperationalError("redis down")

    monkeypatch.setattr(tasks.compensate_order, "delay", broker_down)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {shop[1]}")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/orders/{order.pk}/cancel/", {"reason": "x"}, format="json")
    assert response.status_code == 200
    assert Payment.objects.get(order_id=order.pk).status == "captured"  # not yet refunded

    monkeypatch.undo()
    settings.COT_PIPELINE_MODE = "inline"
    settings.COT_STUCK_ORDER_SECONDS = 0
    sweep_stuck_orders()
    assert Payment.objects.get(order_id=order.pk).status == "refunded"
    assert len(simulator.ledger()["refunds"]) == 1


def test_a_charge_that_waited_out_its_retries_for_a_missing_header_step_leaves_the_order(
    place, settings
):
    order = place(items=[("PARA-500", 1)], run=False)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PROCESSING)
    # No header step ever recorded its outcome (say, it gave up on the database).
    result = tasks.charge_payment.apply(args=[str(order.pk)], retries=settings.COT_STEP_MAX_RETRIES)
    assert result.get() == "incomplete"
    order.refresh_from_db()
    assert (order.status, order.failure_reason) == (OrderStatus.PROCESSING, None)


@pytest.mark.parametrize("step", ["charge_payment", "book_shipment"])
@pytest.mark.parametrize(
    "trouble",
    [
        DjangoOperationalError("terminating connection due to administrator command"),
        AttemptInProgress("logistics/swift", "sent by another process"),
    ],
    ids=["database_restarting", "lease_held_by_a_lost_sender"],
)
def test_a_step_out_of_retries_for_trouble_not_the_peers_leaves_the_order_for_the_sweeper(
    place, settings, monkeypatch, step, trouble
):
    """PostgreSQL restarting, or a sender that lost its host or the database while its call
    was out (its lease holds the call until it ends), is no reason to fail a payment or
    cancel a booking: the order waits in `processing` for the sweeper (tests/cluster causes
    both for real)."""
    order = place(items=[("PARA-500", 1)], run=False)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PROCESSING)

    def fails(order_id):
        raise trouble

    service = {"charge_payment": "order_charge_payment", "book_shipment": "order_book_shipment"}
    monkeypatch.setattr(steps, service[step], fails)
    task = getattr(tasks, step)
    result = task.apply(args=[str(order.pk)], retries=settings.COT_STEP_MAX_RETRIES)
    assert result.get() == "incomplete"
    order.refresh_from_db()
    assert (order.status, order.failure_reason) == (OrderStatus.PROCESSING, None)


def test_a_refund_is_on_the_timeline_even_if_compensation_dies_right_after_it(
    shop, place, simulator, django_capture_on_commit_callbacks
):
    order = place(items=[("PARA-500", 1)])
    assert order.status == OrderStatus.CONFIRMED
    # The order ends; its compensation gets as far as the refund, and its process dies.
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.CANCELLED)

    with django_capture_on_commit_callbacks(execute=True):
        assert payment_cancel(order_id=order.pk, token=order.payment_token) == "refunded"
    assert list(order.events.filter(type="payment.refunded").values_list("type", flat=True)) == [
        "payment.refunded"
    ]
    # The redelivered compensation finds nothing left to refund and records nothing twice.
    order_compensate(order.pk)
    assert order.events.filter(type="payment.refunded").count() == 1
    assert len(simulator.ledger()["refunds"]) == 1


@pytest.mark.parametrize("step", ["charge", "shipment"])
def test_an_order_that_ends_while_its_charge_or_booking_lands_is_compensated_by_the_step(
    shop, place, monkeypatch, simulator, step
):
    # The order is cancelled after the money was taken or the parcel booked, before the
    # step records its outcome, and the cancellation's own compensation never comes (its
    # process died): the step reads the status after its outcome, sees the order ended,
    # and its task asks for the compensation itself.
    name = "payment_charge" if step == "charge" else "shipment_book"
    real = getattr(steps, name)

    def land_then_end(**kwargs):
        outcome = real(**kwargs)
        Order.objects.filter(pk=kwargs["order_id"]).update(status=OrderStatus.CANCELLED)
        return outcome

    monkeypatch.setattr(steps, name, land_then_end)
    compensated = []
    monkeypatch.setattr("orders.pipeline.compensate", compensated.append)
    order = place(items=[("PARA-500", 1)])
    assert order.status == OrderStatus.CANCELLED
    assert OrderStep.objects.get(order_id=order.pk, step=step).ok
    assert compensated == [order.pk]
