"""Payment retry: a declined order of a client with a window waits `awaiting_payment` (stock
kept) for another payment method through `POST /api/v1/orders/<id>/payment/`, and ends
`payment_failed` when the window passes (inline pipeline, real simulator and database)."""

import datetime
import json
import uuid

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from inventory.enums import ReservationStatus
from inventory.models import Reservation, StockBatch
from orders.enums import OrderStatus, Step
from orders.models import Order, OrderStep
from orders.services.expiry import order_expire_reservations
from orders.services.payment_retry import (
    PaymentRetryClosed,
    order_expire_payment_retries,
    order_payment_retry,
)
from orders.services.transitions import InvalidTransition
from payments.models import Payment

pytestmark = pytest.mark.django_db
WINDOW = 60
GOOD = {"payment_method": "card", "payment_token": "tok_ok"}


@pytest.fixture
def retrying(shop):
    client, _ = shop
    client.payment_retry_seconds = WINDOW
    client.save(update_fields=["payment_retry_seconds"])
    return shop


def pay(key, order_id, body):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    raw = body if isinstance(body, str) else json.dumps(body)
    return client.post(f"/api/v1/orders/{order_id}/payment/", raw, content_type="application/json")


def reserved(batch="B24-001"):
    return StockBatch.objects.get(batch=batch).reserved


def charges(simulator, order):
    return [c for c in simulator.ledger()["charges"] if str(order.pk) in c["idempotency_key"]]


def snapshot(order):
    """What a refused request must leave as it was."""
    row = Order.objects.get(pk=order.pk)
    payment = Payment.objects.get(order_id=order.pk)
    return (
        row.status,
        row.payment_method,
        row.payment_token,
        row.payment_retry_until,
        row.events.count(),
        payment.status,
        payment.method,
        payment.attempts.count(),
        list(OrderStep.objects.filter(order=row).values_list("pk", "step", "ok", "attempts")),
    )


def test_a_decline_waits_for_another_payment_with_its_stock_kept(retrying, place, simulator):
    before = reserved()
    start = timezone.now()
    order = place(payment_token="tok_insufficient")

    assert order.status == OrderStatus.AWAITING_PAYMENT
    assert order.failure_reason is None
    window = order.payment_retry_until - start
    assert datetime.timedelta(seconds=WINDOW) <= window < datetime.timedelta(seconds=WINDOW + 5)
    assert reserved() == before + 2
    assert Reservation.objects.get(order_id=order.pk).status == ReservationStatus.HELD
    assert Payment.objects.get(order_id=order.pk).status == "declined"
    requested = order.events.get(type="payment.retry_requested")
    assert requested.data == {
        "reason": "payment_declined",
        "decline_code": "insufficient_funds",
        "payment_retry_until": order.payment_retry_until.isoformat().replace("+00:00", "Z"),
    }
    shown = APIClient()
    shown.credentials(HTTP_AUTHORIZATION=f"Api-Key {retrying[1]}")
    body = shown.get(f"/api/v1/orders/{order.pk}/").json()
    assert body["status"] == "awaiting_payment"
    assert body["payment_retry_until"] == requested.data["payment_retry_until"]


def test_without_a_window_a_decline_fails_the_order_as_before(shop, place, simulator):
    before = reserved()
    order = place(payment_token="tok_decline")
    assert (order.status, order.failure_reason) == ("payment_failed", "payment_declined")
    assert order.payment_retry_until is None
    assert reserved() == before
    assert "payment.retry_requested" not in set(order.events.values_list("type", flat=True))


def test_a_retry_with_a_good_token_confirms_the_order_with_one_capture(retrying, place, simulator):
    before = StockBatch.objects.get(batch="B24-001").on_hand
    order = place(payment_token="tok_decline")
    assert order.status == OrderStatus.AWAITING_PAYMENT

    response = pay(retrying[1], order.pk, GOOD)

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["status"], body["payment_retry_until"]) == ("confirmed", None)
    assert (body["payment"]["method"], body["payment"]["status"]) == ("card", "captured")
    sent = charges(simulator, order)
    # A new attempt and key for the new token; the gateway captured once.
    assert [(c["idempotency_key"], c["token"], c["status"]) for c in sent] == [
        (f"order:{order.pk}:charge:1", "tok_decline", "declined"),
        (f"order:{order.pk}:charge:2", "tok_ok", "captured"),
    ]
    assert Payment.objects.get(order_id=order.pk).reference == sent[1]["id"]
    assert StockBatch.objects.get(batch="B24-001").on_hand == before - 2
    types = list(Order.objects.get(pk=order.pk).events.values_list("type", flat=True))
    assert types.index("payment.retry_requested") < types.index("payment.captured")
    resumed = Order.objects.get(pk=order.pk).events.filter(type="order.processing").last()
    assert resumed.data == {"cause": "payment_retry", "payment_method": "card"}


def test_declined_again_it_waits_again_until_the_same_end(retrying, place, simulator):
    order = place(payment_token="tok_decline")
    until = order.payment_retry_until

    response = pay(retrying[1], order.pk, {"payment_method": "upi", "payment_token": "tok_decline"})

    assert response.status_code == 202, response.content
    order.refresh_from_db()
    assert (order.status, order.payment_retry_until) == ("awaiting_payment", until)
    assert order.events.filter(type="payment.retry_requested").count() == 2
    assert len(charges(simulator, order)) == 2

    # A third try, cash on delivery: no gateway, nothing more charged.
    response = pay(retrying[1], order.pk, {"payment_method": "cod"})
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "confirmed"
    assert response.json()["payment"]["status"] == "pending_collection"
    assert response.json()["payment"]["gateway"] is None
    assert len(charges(simulator, order)) == 2


def test_an_order_not_awaiting_payment_is_409_and_unchanged(retrying, place, simulator):
    order = place()
    assert order.status == OrderStatus.CONFIRMED
    before = snapshot(order)

    response = pay(retrying[1], order.pk, GOOD)

    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "invalid_transition"
    assert snapshot(order) == before
    assert len(charges(simulator, order)) == 1


def test_a_retry_after_the_window_is_409_and_unchanged(retrying, place, simulator):
    order = place(payment_token="tok_decline")
    # The window ended a moment ago; the sweep has not run yet.
    Order.objects.filter(pk=order.pk).update(
        payment_retry_until=timezone.now() - datetime.timedelta(seconds=1)
    )
    before = snapshot(order)

    response = pay(retrying[1], order.pk, GOOD)

    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "invalid_transition"
    assert "window has passed" in response.json()["errors"][0]["detail"]
    assert snapshot(order) == before
    assert len(charges(simulator, order)) == 1


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({"payment_method": "card"}, "payment_token"),
        ({"payment_method": "card", "payment_token": ""}, "payment_token"),
        ({"payment_method": "cheque", "payment_token": "tok_ok"}, "payment_method"),
        ({"payment_token": "tok_ok"}, "payment_method"),
        ({**GOOD, "amount": "1.00"}, "amount"),
        ({"payment_method": "card", "payment_token": "t" * 201}, "payment_token"),
        ("[1, 2]", "non_field_errors"),
    ],
)
def test_a_bad_body_is_400_and_writes_nothing(retrying, place, simulator, body, attr):
    order = place(payment_token="tok_decline")
    before = snapshot(order)

    response = pay(retrying[1], order.pk, body)

    assert response.status_code == 400, response.content
    assert response.json()["type"] == "validation_error"
    assert response.json()["errors"][0]["attr"] == attr
    assert snapshot(order) == before


def test_another_clients_order_is_404(retrying, place, simulator):
    order = place(payment_token="tok_decline")
    before = snapshot(order)
    stranger = api_key_for(ApiClientFactory(name="other-shop", payment_retry_seconds=WINDOW))

    assert pay(stranger, order.pk, GOOD).status_code == 404
    assert pay(stranger, uuid.uuid4(), GOOD).status_code == 404
    assert pay(retrying[1], uuid.uuid4(), GOOD).status_code == 404
    assert snapshot(order) == before


def test_of_two_retries_one_moves_the_order(retrying, place, simulator):
    # The service alone: the API starts the charge after it.
    order = place(payment_token="tok_decline")
    order_payment_retry(order=order, payment_method="card", payment_token="tok_ok")
    with pytest.raises(InvalidTransition):
        order_payment_retry(
            order=Order.objects.get(pk=order.pk), payment_method="upi", payment_token="tok_x"
        )
    order.refresh_from_db()
    assert (order.status, order.payment_method, order.payment_token) == (
        "processing",
        "card",
        "tok_ok",
    )
    payment = Payment.objects.get(order_id=order.pk)
    assert (payment.status, payment.method, payment.decline_code) == ("prepared", "card", "")
    # The charge step starts over: a new row, not yet run.
    charge = OrderStep.objects.get(order=order, step=Step.CHARGE)
    assert (charge.ok, charge.attempts) == (None, 0)


def test_the_window_passing_fails_the_payment_and_releases_the_stock(
    retrying, place, simulator, django_capture_on_commit_callbacks
):
    before = reserved()
    order = place(payment_token="tok_decline")
    assert reserved() == before + 2
    assert order_expire_payment_retries() == 0  # still open

    with django_capture_on_commit_callbacks(execute=True):
        ended = order_expire_payment_retries(now=order.payment_retry_until)

    assert ended == 1
    order.refresh_from_db()
    assert (order.status, order.failure_reason) == ("payment_failed", "payment_declined")
    assert reserved() == before
    assert Reservation.objects.get(order_id=order.pk).status == ReservationStatus.RELEASED
    assert order.events.get(type="payment.failed").data == {
        "cause": "payment_retry_expired",
        "reason": "payment_declined",
    }
    # Nothing was captured: the declined payment stays declined, with no charge after it.
    assert Payment.objects.get(order_id=order.pk).status == "declined"
    assert len(charges(simulator, order)) == 1
    with pytest.raises(InvalidTransition):
        order_payment_retry(order=order, payment_method="card", payment_token="tok_ok")
    assert order_expire_payment_retries(now=order.payment_retry_until) == 0


def test_the_service_refuses_a_retry_past_the_window(retrying, place, simulator):
    order = place(payment_token="tok_decline")
    Order.objects.filter(pk=order.pk).update(payment_retry_until=timezone.now())
    with pytest.raises(PaymentRetryClosed):
        order_payment_retry(order=order, payment_method="card", payment_token="tok_ok")


def test_the_client_may_cancel_an_order_awaiting_payment(
    retrying, place, simulator, django_capture_on_commit_callbacks
):
    before = reserved()
    order = place(payment_token="tok_decline")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {retrying[1]}")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/orders/{order.pk}/cancel/", "{}", content_type="application/json"
        )

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["payment_retry_until"]) == (
        "cancelled",
        None,
    )
    assert reserved() == before
    assert pay(retrying[1], order.pk, GOOD).status_code == 409
    assert len(charges(simulator, order)) == 1


def test_the_reservation_expiry_leaves_an_order_awaiting_payment_and_its_retried_charge(
    retrying, place, simulator, settings
):
    order = place(payment_token="tok_decline")
    long_after = timezone.now() + datetime.timedelta(
        seconds=settings.COT_RESERVATION_TTL_SECONDS + 60
    )
    # Waiting for the client: its reservation is kept however old it is.
    assert order_expire_reservations(now=long_after) == 0
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_PAYMENT
    assert Reservation.objects.get(order_id=order.pk).status == ReservationStatus.HELD

    # Paid another way, its charge not run yet: a charge in flight, left to the charge step.
    order_payment_retry(order=order, payment_method="card", payment_token="tok_ok")
    assert order_expire_reservations(now=long_after) == 0
    order.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING
    assert Reservation.objects.get(order_id=order.pk).status == ReservationStatus.HELD
