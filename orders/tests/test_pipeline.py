"""The pipeline's steps in order (inline mode), against the real simulator and database.
The Celery canvas itself is proven by the end-to-end tests in tests/e2e."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.tests.factories import ApiClientFactory
from inventory.models import StockBatch
from orders.enums import OrderStatus, Step
from orders.models import Order, OrderStep
from orders.pipeline import run_inline
from orders.services.retry_policy import order_step_gives_up
from orders.tasks import sweep_stuck_orders
from orders.tests.factories import place_order
from payments.models import Payment

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(demo_catalog, simulator, settings):
    settings.COT_PIPELINE_MODE = "inline"
    return ApiClientFactory()


def run(client, django_capture_on_commit_callbacks, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        order = place_order(client, **kwargs)
    order.refresh_from_db()
    return order


def events(order):
    return list(order.events.values_list("type", flat=True))


def reserved_units():
    return sum(StockBatch.objects.values_list("reserved", flat=True))


def test_otc_order_is_confirmed_paid_booked_and_committed(
    client, simulator, django_capture_on_commit_callbacks
):
    before = StockBatch.objects.get(batch="B24-001").on_hand
    order = run(client, django_capture_on_commit_callbacks, items=[("PARA-500", 2)])

    assert (order.status, order.failure_reason) == (OrderStatus.CONFIRMED, None)
    assert events(order)[:8] == [
        "order.received",
        "order.processing",
        "inventory.reserved",
        "payment.prepared",
        "payment.captured",
        "shipment.booked",
        "inventory.committed",
        "order.confirmed",
    ]
    assert "notification.sent" in events(order)
    assert StockBatch.objects.get(batch="B24-001").on_hand == before - 2
    assert reserved_units() == 0
    ledger = simulator.ledger()
    assert [c["status"] for c in ledger["charges"]] == ["captured"]
    assert len(ledger["shipments"]) == 1
    assert [m["to"] for m in ledger["messages"]] == ["+919800000001"]


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([("AMOX-500", 1)], "prescription_required"),
        ([("PARA-500", 1), ("MPHD-10", 1)], "not_sellable_online"),
        ([("PARA-500", 100), ("CETI-10", 100), ("ORS-ORG", 100)], None),  # fits: control
    ],
)
def test_business_rejections_compensate(
    client, simulator, django_capture_on_commit_callbacks, items, reason
):
    order = run(client, django_capture_on_commit_callbacks, items=items)
    if reason is None:
        assert order.status == OrderStatus.CONFIRMED
        return
    assert (order.status, order.failure_reason) == (OrderStatus.REJECTED, reason)
    assert "prescription.failed" in events(order)
    assert reserved_units() == 0
    assert Payment.objects.get(order_id=order.pk).status == "voided"
    assert simulator.ledger()["charges"] == []


def test_unserviceable_pincode(client, simulator, django_capture_on_commit_callbacks):
    address = {
        "name": "A",
        "line1": "x",
        "line2": "",
        "city": "Kochi",
        "state": "KL",
        "pincode": "682001",
        "phone": "+919800000001",
    }
    order = run(
        client,
        django_capture_on_commit_callbacks,
        items=[("PARA-500", 1)],
        delivery_address=address,
    )
    assert (order.status, order.failure_reason) == ("rejected", "unserviceable_pincode")
    assert "inventory.insufficient" in events(order)


def test_decline_ends_payment_failed_and_releases_stock(
    client, simulator, django_capture_on_commit_callbacks
):
    order = run(
        client,
        django_capture_on_commit_callbacks,
        items=[("PARA-500", 1)],
        payment_token="tok_decline",
    )
    assert (order.status, order.failure_reason) == ("payment_failed", "payment_declined")
    assert "inventory.released" in events(order)
    assert reserved_units() == 0


def test_no_partner_after_capture_cancels_and_refunds(
    client, simulator, django_capture_on_commit_callbacks
):
    for partner in ("swift", "roadie"):
        simulator.control(f"logistics/{partner}", unserviceable_prefixes=["5"])
    order = run(client, django_capture_on_commit_callbacks, items=[("PARA-500", 1)])
    assert (order.status, order.failure_reason) == ("cancelled", "fulfilment_unavailable")
    assert {"shipment.failed", "payment.refunded", "inventory.released"} <= set(events(order))
    assert len(simulator.ledger()["refunds"]) == 1
    assert reserved_units() == 0


def test_every_gateway_down_ends_payment_unavailable(
    client, simulator, django_capture_on_commit_callbacks
):
    for gateway in ("alpha", "beta"):
        simulator.control(f"gateways/{gateway}", down=True)
    order = run(client, django_capture_on_commit_callbacks, items=[("PARA-500", 1)])
    assert (order.status, order.failure_reason) == ("payment_failed", "payment_unavailable")
    assert reserved_units() == 0


def test_running_the_pipeline_again_changes_nothing(
    client, simulator, django_capture_on_commit_callbacks
):
    order = run(client, django_capture_on_commit_callbacks, items=[("PARA-500", 3)])
    on_hand = StockBatch.objects.get(batch="B24-001").on_hand
    run_inline(order.pk)
    run_inline(order.pk)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CONFIRMED
    assert StockBatch.objects.get(batch="B24-001").on_hand == on_hand
    ledger = simulator.ledger()
    assert len(ledger["charges"]) == 1 and len(ledger["shipments"]) == 1


def test_sweeper_redrives_an_order_whose_message_was_lost(
    client, simulator, settings, django_capture_on_commit_callbacks
):
    order = place_order(client, items=[("PARA-500", 1)])  # on_commit never ran: no pipeline
    assert order.status == OrderStatus.RECEIVED
    settings.COT_STUCK_ORDER_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_stuck_orders() == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.CONFIRMED


def test_payment_steps_wait_a_bounded_time_from_their_first_attempt(client, settings):

    settings.COT_PAYMENT_MAX_WAIT_SECONDS = 60
    settings.COT_STEP_MAX_RETRIES = 5
    order = place_order(client, items=[("PARA-500", 1)])
    # No charge attempt recorded yet: the retry count decides.
    assert not order_step_gives_up(order.pk, Step.CHARGE, retries=4)
    assert order_step_gives_up(order.pk, Step.CHARGE, retries=5)
    row = OrderStep.objects.create(order=order, step=Step.CHARGE)
    assert not order_step_gives_up(order.pk, Step.CHARGE, retries=50)
    OrderStep.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(seconds=61))
    assert order_step_gives_up(order.pk, Step.CHARGE, retries=0)
    assert not order_step_gives_up(order.pk, Step.SHIPMENT, retries=4)
