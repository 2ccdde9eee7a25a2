"""Partial refunds and payouts against the real simulator: each its own key, the sum never
above the capture whatever races, one refund per cause however often it is asked."""

import threading
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from prometheus_client import REGISTRY

from core.http import ExternalUnavailable
from payments.enums import PaymentStatus
from payments.models import Payment, PaymentAttempt
from payments.services import (
    NotRefundable,
    RefundExceedsCapture,
    payment_cancel,
    payment_charge,
    payment_collect,
    payment_prepare,
    refund_request,
)
from payments.services.refunds import refund_send, refunds_unsent

AMOUNT = Decimal("100.00")


def captured() -> uuid.UUID:
    order_id = uuid.uuid4()
    payment_prepare(order_id=order_id, method="upi", amount=AMOUNT)
    payment_charge(order_id=order_id, token="tok_ok")
    return order_id


def refunds_of(simulator, order_id):
    return [r for r in simulator.ledger()["refunds"] if str(order_id) in r["idempotency_key"]]


@pytest.mark.django_db
def test_partial_refunds_each_with_its_own_key_until_nothing_is_left(
    simulator, django_capture_on_commit_callbacks
):
    order_id = captured()
    refunded_before = REGISTRY.get_sample_value("cot_refunded_total") or 0.0
    with django_capture_on_commit_callbacks(execute=True):
        refund_request(order_id=order_id, amount=Decimal("30.00"), cause="return:a")
    payment = Payment.objects.get(order_id=order_id)
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", Decimal("30.00"))

    with django_capture_on_commit_callbacks(execute=True):
        # The same cause again (a redelivered request): the same refund, nothing new.
        refund_request(order_id=order_id, amount=Decimal("30.00"), cause="return:a")
        refund_request(order_id=order_id, amount=Decimal("70.00"), cause="return:b")
    with pytest.raises(RefundExceedsCapture):
        refund_request(order_id=order_id, amount=Decimal("0.01"), cause="return:c")
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("refunded", AMOUNT)
    assert [(r["idempotency_key"], r["amount"]) for r in refunds_of(simulator, order_id)] == [
        (f"order:{order_id}:refund:1", "30.00"),
        (f"order:{order_id}:refund:2", "70.00"),
    ]
    # Counted once each, in INR.
    assert REGISTRY.get_sample_value("cot_refunded_total") - refunded_before == 100.0
    # Compensation after everything went back: nothing more to send.
    assert payment_cancel(order_id=order_id) is None
    assert len(refunds_of(simulator, order_id)) == 2


@pytest.mark.django_db
def test_compensation_refunds_only_what_is_left(simulator, django_capture_on_commit_callbacks):
    order_id = captured()
    with django_capture_on_commit_callbacks(execute=True):
        refund_request(order_id=order_id, amount=Decimal("25.00"), cause="lines:x")
    assert payment_cancel(order_id=order_id) == PaymentStatus.REFUNDED
    assert [r["amount"] for r in refunds_of(simulator, order_id)] == ["25.00", "75.00"]


@pytest.mark.django_db
def test_a_refund_the_gateway_cannot_take_now_is_sent_again_later_with_its_key(simulator):
    order_id = captured()
    simulator.control("gateways/alpha", down=True)
    attempt = refund_request(order_id=order_id, amount=Decimal("10.00"), cause="rto:1")
    with pytest.raises(ExternalUnavailable):
        refund_send(attempt_id=attempt.pk)
    assert refunds_of(simulator, order_id) == []
    assert attempt.pk in refunds_unsent(older_than_seconds=-1)
    simulator.control("gateways/alpha", down=False)
    assert refund_send(attempt_id=attempt.pk) is True
    assert refund_send(attempt_id=attempt.pk) is True  # done: nothing sent again
    assert [r["idempotency_key"] for r in refunds_of(simulator, order_id)] == [
        f"order:{order_id}:refund:1"
    ]
    assert refunds_unsent(older_than_seconds=-1) == []


@pytest.mark.django_db
def test_cash_on_delivery_is_paid_back_to_the_customers_upi_id(
    simulator, django_capture_on_commit_callbacks
):
    order_id = uuid.uuid4()
    payment_prepare(order_id=order_id, method="cod", amount=AMOUNT)
    payment_charge(order_id=order_id, token="")
    # Not collected yet: nothing to pay back, the amount due shrinks instead.
    assert refund_request(order_id=order_id, amount=Decimal("40.00"), cause="lines:1") is None
    assert Payment.objects.get(order_id=order_id).amount == Decimal("60.00")
    assert payment_collect(order_id=order_id)
    with pytest.raises(NotRefundable, match="UPI id"):
        refund_request(order_id=order_id, amount=Decimal("10.00"), cause="return:1")
    with django_capture_on_commit_callbacks(execute=True):
        refund_request(
            order_id=order_id, amount=Decimal("10.00"), cause="return:1", vpa="asha@okbank"
        )
    payouts = [p for p in simulator.ledger()["payouts"] if str(order_id) in p["idempotency_key"]]
    assert [(p["vpa"], p["amount"]) for p in payouts] == [("asha@okbank", "10.00")]
    payment = Payment.objects.get(order_id=order_id)
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", Decimal("10.00"))


@pytest.mark.django_db
def test_nothing_refundable_before_capture_and_no_zero_refunds(simulator):
    order_id = uuid.uuid4()
    payment_prepare(order_id=order_id, method="upi", amount=AMOUNT)
    with pytest.raises(NotRefundable):
        refund_request(order_id=order_id, amount=Decimal("1.00"), cause="x")
    with pytest.raises(NotRefundable):
        refund_request(order_id=captured(), amount=Decimal("0"), cause="x")
    assert not PaymentAttempt.objects.filter(kind="refund").exists()


@pytest.mark.django_db(transaction=True)
def test_racing_refunds_never_pass_the_capture(simulator):
    order_id = captured()
    outcomes: list[str] = []

    def ask(n: int) -> None:
        try:
            attempt = refund_request(order_id=order_id, amount=Decimal("30.00"), cause=f"r:{n}")
            refund_send(attempt_id=attempt.pk)
            outcomes.append("refunded")
        except RefundExceedsCapture:
            outcomes.append("exceeds")
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["exceeds"] * 5 + ["refunded"] * 3
    payment = Payment.objects.get(order_id=order_id)
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", Decimal("90.00"))
    assert sum(Decimal(r["amount"]) for r in refunds_of(simulator, order_id)) == Decimal("90.00")
