"""The hold timeout end to end: an order on hold for a pending prescription, its hold
moved back past COT_HOLD_TIMEOUT_SECONDS in the database, and beat's task handed to the
live worker: the order is cancelled `prescription_review_timeout`, its stock released,
its payment voided, and the customer told of the hold and of why it ended."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from celery.result import allow_join_result
from django.utils import timezone

from tests.e2e.conftest import Stack
from tests.e2e.test_prescription_flow import new_customer, order, upload

pytestmark = pytest.mark.e2e
SKU = "AMOX-500"


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
    return found


def sms_about(stack: Stack, order_id: str, event: str) -> list[str]:
    key = f"order:{order_id}:notify:{event}:sms"
    return [m["text"] for m in stack.simulator.ledger()["messages"] if m["idempotency_key"] == key]


def stock(django_db_blocker) -> list[tuple[str, int, int]]:
    from inventory.models import StockBatch

    with django_db_blocker.unblock():
        return sorted(
            StockBatch.objects.filter(product__sku=SKU).values_list("batch", "on_hand", "reserved")
        )


def test_a_hold_nobody_reviews_is_cancelled_and_its_stock_released(
    stack, broker, django_db_blocker
):
    from django.conf import settings

    from orders.models import OrderEvent

    before = stock(django_db_blocker)
    customer = new_customer()
    with stack.client() as client:
        order_id = order(client, customer, upload(client, customer), quantity=2)
        held = stack.wait_for(client, order_id)
        assert held["status"] == "on_hold", held
        assert sum(r for _, _, r in stock(django_db_blocker)) == sum(r for _, _, r in before) + 2
        [told] = wait_until(lambda: sms_about(stack, order_id, "order.on_hold"))
        assert "waiting for our pharmacist to check your prescription" in told

        # As if nobody had reviewed it for longer than the timeout (the stack's default).
        with django_db_blocker.unblock():
            OrderEvent.objects.filter(order_id=order_id, type="order.on_hold").update(
                at=timezone.now() - timedelta(seconds=settings.COT_HOLD_TIMEOUT_SECONDS, minutes=1)
            )
        swept = broker.send_task("orders.expire_holds", queue="maintenance", ignore_result=False)
        with allow_join_result():  # this process is no worker: waiting cannot deadlock one
            assert swept.get(timeout=30) >= 1

        done = stack.wait_for(client, order_id, until=lambda o: o["status"] != "on_hold")
        assert (done["status"], done["failure_reason"]) == (
            "cancelled",
            "prescription_review_timeout",
        )
        [cancelled] = [e for e in done["events"] if e["type"] == "order.cancelled"]
        assert cancelled["data"] == {"reason": "prescription_review_timeout"}
        assert "inventory.released" in {e["type"] for e in done["events"]}
        # Compensation (the live worker, after commit) voids the prepared payment.
        voided = stack.wait_for(
            client, order_id, until=lambda o: o["payment"]["status"] != "prepared"
        )
        assert voided["payment"]["status"] == "voided"

    assert stock(django_db_blocker) == before
    [told] = wait_until(lambda: sms_about(stack, order_id, "order.cancelled"))
    assert told == (
        f"Your order {done['number']} was cancelled (our pharmacist could not check your "
        "prescription in time)."
    )
    assert not [c for c in stack.simulator.ledger()["charges"] if order_id in c["idempotency_key"]]
