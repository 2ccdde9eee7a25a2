"""The hold timeout: an order waiting for a pharmacist longer than COT_HOLD_TIMEOUT_SECONDS
is cancelled `prescription_review_timeout` and gives back what it held; everything else is
left alone. Inline pipeline, real database and simulator."""

import datetime
import threading

import pytest
from celery import current_app as app
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from core.tests.factories import ApiClientFactory
from inventory.enums import ReservationStatus
from inventory.models import Reservation, StockBatch
from orders.enums import OrderStatus
from orders.models import Order, OrderEvent
from orders.services import holds
from orders.services.holds import order_expire_holds
from orders.tasks import expire_holds
from orders.tests.factories import place_order
from payments.models import Payment
from prescriptions.enums import PrescriptionStatus
from prescriptions.models import Dispensation, Prescription, PrescriptionItem
from prescriptions.services import RxItemRequest, prescription_dispense, prescription_review
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db
TIMEOUT = 3600
SKU = "AMOX-500"


@pytest.fixture
def client(demo_catalog, simulator, settings):
    settings.COT_PIPELINE_MODE = "inline"
    settings.COT_HOLD_TIMEOUT_SECONDS = TIMEOUT
    return ApiClientFactory()


@pytest.fixture
def pharmacist(db):
    return User.objects.create_user("ph", is_staff=True)


@pytest.fixture
def held(client, django_capture_on_commit_callbacks):
    """Place an order that the pipeline puts on hold for its pending prescription."""

    def place(quantity=2):
        prescription = prescription_with(
            [(SKU, 10)], client=client, status=PrescriptionStatus.PENDING_REVIEW
        )
        with django_capture_on_commit_callbacks(execute=True):
            order = place_order(client, items=[(SKU, quantity)], prescription_id=prescription.pk)
        order.refresh_from_db()
        assert order.status == OrderStatus.ON_HOLD
        return order

    return place


def hold_for(order, seconds):
    """As if the order went on hold `seconds` ago."""
    OrderEvent.objects.filter(order_id=order.pk, type="order.on_hold").update(
        at=timezone.now() - datetime.timedelta(seconds=seconds)
    )


def batches():
    return sorted(
        StockBatch.objects.filter(product__sku=SKU).values_list("batch", "on_hand", "reserved")
    )


def status_of(order):
    order.refresh_from_db()
    return order.status, order.failure_reason


def timeline(order):
    return list(OrderEvent.objects.filter(order_id=order.pk).values_list("type", flat=True))


def sweep(captured):
    # Through the beat task, with the ended orders' compensation run after commit.
    with captured(execute=True):
        return expire_holds()


def test_a_hold_past_the_timeout_is_cancelled_and_gives_back_its_stock_and_claims(
    held, simulator, django_capture_on_commit_callbacks
):
    before = batches()
    order = held()
    assert sum(reserved for _, _, reserved in batches()) == 2
    # Whatever the order claimed of its prescription goes back with it (order_end).
    assert prescription_dispense(
        order_id=order.pk, prescription_id=order.prescription_id, lines=[RxItemRequest(SKU, 2)]
    )
    hold_for(order, TIMEOUT + 1)

    assert sweep(django_capture_on_commit_callbacks) == 1

    assert status_of(order) == ("cancelled", "prescription_review_timeout")
    cancelled = OrderEvent.objects.get(order_id=order.pk, type="order.cancelled")
    assert cancelled.data == {"reason": "prescription_review_timeout"}
    assert "inventory.released" in timeline(order)
    assert batches() == before  # on hand untouched, nothing reserved any more
    assert Reservation.objects.get(order_id=order.pk).status == ReservationStatus.RELEASED
    assert PrescriptionItem.objects.get(sku=SKU).dispensed_quantity == 0
    assert list(Dispensation.objects.values_list("returned", flat=True)) == [True]
    # Compensation ran: the prepared payment is voided, nothing was ever charged.
    assert Payment.objects.get(order_id=order.pk).status == "voided"
    assert simulator.ledger()["charges"] == []
    # The prescription itself still waits for its review (another order may use it).
    assert Prescription.objects.get().status == PrescriptionStatus.PENDING_REVIEW


def test_a_second_sweep_changes_nothing(held, django_capture_on_commit_callbacks):
    order = held()
    hold_for(order, TIMEOUT + 1)
    assert sweep(django_capture_on_commit_callbacks) == 1
    after_first, figures = timeline(order), batches()

    assert sweep(django_capture_on_commit_callbacks) == 0

    assert timeline(order) == after_first
    assert batches() == figures
    assert status_of(order) == ("cancelled", "prescription_review_timeout")


def test_younger_holds_and_holds_whose_review_is_in_are_left_alone(
    held, client, pharmacist, django_capture_on_commit_callbacks
):
    young = held()
    hold_for(young, TIMEOUT - 60)
    # Held long ago, then held again a moment ago: the latest hold counts.
    again = held()
    hold_for(again, TIMEOUT * 2)
    OrderEvent.objects.create(order_id=again.pk, type="order.on_hold", data={})
    # Reviewed long after it went on hold, but the news never reached the order (no
    # on_commit): the stuck-order sweeper hands it on; it is no timeout.
    decided = held()
    hold_for(decided, TIMEOUT + 1)
    prescription_review(
        prescription_id=decided.prescription_id, reviewer=pharmacist, decision="approved"
    )
    held_stock = batches()

    assert sweep(django_capture_on_commit_callbacks) == 0

    for order in (young, again, decided):
        assert status_of(order) == ("on_hold", None)
        assert "order.cancelled" not in timeline(order)
    assert batches() == held_stock


def test_orders_that_are_not_on_hold_are_never_timed_out(
    held, client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = place_order(client, items=[("PARA-500", 1)])
    order = held()
    hold_for(order, TIMEOUT + 1)
    # An old `order.on_hold` on an order that has moved on since (resumed, then confirmed).
    OrderEvent.objects.create(order_id=confirmed.pk, type="order.on_hold", data={})
    hold_for(confirmed, TIMEOUT * 2)

    assert sweep(django_capture_on_commit_callbacks) == 1

    assert status_of(confirmed) == ("confirmed", None)
    assert status_of(order) == ("cancelled", "prescription_review_timeout")


def test_the_sweep_is_a_maintenance_task_run_by_beat(settings):
    [entry] = [e for e in app.conf.beat_schedule.values() if e["task"] == "orders.expire_holds"]
    assert entry["schedule"] == float(settings.COT_SWEEP_INTERVAL_SECONDS)
    assert entry["options"]["queue"] == "maintenance"
    assert app.conf.task_routes["orders.expire_holds"] == {"queue": "maintenance"}


def test_the_batch_is_bounded_and_the_oldest_hold_goes_first(
    held, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(holds, "BATCH", 1)
    newer, older = held(), held()
    hold_for(newer, TIMEOUT + 10)
    hold_for(older, TIMEOUT + 20)

    assert sweep(django_capture_on_commit_callbacks) == 1
    assert (status_of(older)[0], status_of(newer)[0]) == ("cancelled", "on_hold")
    assert sweep(django_capture_on_commit_callbacks) == 1
    assert status_of(newer)[0] == "cancelled"


def in_thread(target, results, name):
    def run():
        try:
            results[name] = target()
        except Exception as exc:  # reported by the test, not lost in the thread
            results[name] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_review_holding_the_prescription_wins_over_the_sweep(held, pharmacist, simulator):
    order = held()
    hold_for(order, TIMEOUT + 1)
    reviewing, commit = threading.Event(), threading.Event()
    results = {}

    def review():
        # The review's transaction is open (the prescription row locked) while the sweep
        # reaches the same order; it commits, and its news resumes the order.
        with transaction.atomic():
            prescription_review(
                prescription_id=order.prescription_id, reviewer=pharmacist, decision="approved"
            )
            reviewing.set()
            assert commit.wait(10)
        return "approved"

    reviewer = in_thread(review, results, "review")
    assert reviewing.wait(10)
    sweeper = in_thread(order_expire_holds, results, "sweep")
    sweeper.join(1)
    assert sweeper.is_alive(), "the sweep waits for the review's lock"
    commit.set()
    reviewer.join(20)
    sweeper.join(20)

    assert results == {"review": "approved", "sweep": 0}
    assert status_of(order) == ("confirmed", None)
    assert [c["status"] for c in simulator.ledger()["charges"]] == ["captured"]


@pytest.mark.django_db(transaction=True)
def test_a_sweep_holding_the_order_wins_over_a_review_landing_then(
    held, pharmacist, simulator, monkeypatch
):
    order = held()
    hold_for(order, TIMEOUT + 1)
    before_hold = batches()
    ending, end = threading.Event(), threading.Event()
    results = {}
    real_end = holds.order_end

    def end_when_told(**kwargs):
        # The sweep holds the order's and the prescription's locks here.
        ending.set()
        assert end.wait(10)
        return real_end(**kwargs)

    monkeypatch.setattr(holds, "order_end", end_when_told)

    def review():
        prescription_review(
            prescription_id=order.prescription_id, reviewer=pharmacist, decision="approved"
        )
        return "approved"

    sweeper = in_thread(order_expire_holds, results, "sweep")
    assert ending.wait(10)
    reviewer = in_thread(review, results, "review")
    reviewer.join(1)
    assert reviewer.is_alive(), "the review waits for the sweep's lock"
    end.set()
    sweeper.join(20)
    reviewer.join(20)

    assert results == {"sweep": 1, "review": "approved"}
    # The review went through, but its order had ended: it stays cancelled, uncharged.
    assert Prescription.objects.get().status == PrescriptionStatus.APPROVED
    assert status_of(order) == ("cancelled", "prescription_review_timeout")
    assert "order.resumed" not in timeline(order)
    assert simulator.ledger()["charges"] == []
    assert sum(reserved for _, _, reserved in batches()) == 0
    assert [on_hand for _, on_hand, _ in batches()] == [on_hand for _, on_hand, _ in before_hold]
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
