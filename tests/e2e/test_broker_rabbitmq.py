"""What only RabbitMQ does, on a live stack of this module's own (COT_TEST_BROKER=amqp;
scripts/test runs it in its RabbitMQ pass): a retry's countdown goes through native
delayed delivery (quorum queues cannot hold a message back), and a message that kills
its worker every time is dead-lettered at the queue's delivery limit, and its order is
flagged for ops.

The database's own attempt cap (COT_STEP_MAX_ATTEMPTS, proven on Redis in test_chaos)
is set out of reach here, and the sweeper's re-drive too, so what stops the poison
message and finishes the retried order is the broker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import Simulator
from tests.brokers import broker_kind
from tests.e2e.conftest import Stack, api_keys, stack_start
from tests.e2e.test_order_flow import body

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(broker_kind() != "amqp", reason="RabbitMQ only (COT_TEST_BROKER=amqp)"),
]

DELIVERY_LIMIT = 2


@pytest.fixture(scope="module")
def rabbit(
    e2e_database: str,
    django_db_blocker: Any,
    simulator_process: Simulator,
    tmp_path_factory: Any,
) -> Iterator[Stack]:
    from django.conf import settings

    run = f"rmq-{uuid.uuid4().hex[:6]}"
    stack = stack_start(
        database_url=e2e_database,
        redis_url=settings.REDIS_URL,
        simulator=simulator_process,
        keys=api_keys(django_db_blocker, run),
        tmp_path_factory=tmp_path_factory,
        run=run,
        concurrency=2,
        beat=True,
        broker="amqp",
        env={
            "COT_BROKER_DELIVERY_LIMIT": str(DELIVERY_LIMIT),
            "COT_STEP_MAX_ATTEMPTS": "100",
            "COT_STUCK_ORDER_SECONDS": "3600",
            "COT_SWEEP_INTERVAL_SECONDS": "1",
            # Retries back off 1-4 s: whole seconds through the delay queues.
            "COT_STEP_RETRY_BACKOFF_MAX": "4",
            "COT_PAYMENT_MAX_WAIT_SECONDS": "60",
        },
    )
    stack.django_db_blocker = django_db_blocker  # type: ignore[attr-defined]
    try:
        yield stack
    finally:
        stack.stop()


def db(stack: Stack, query: Callable[[], Any]) -> Any:
    with stack.django_db_blocker.unblock():  # type: ignore[attr-defined]
        return query()


def place(stack: Stack) -> str:
    with stack.client() as client:
        response = client.post("/api/v1/orders/", json=body())
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.25)


def test_a_retry_with_a_countdown_is_delivered_after_its_delay(rabbit):
    from orders.models import OrderStep

    rabbit.simulator.reset()
    for gateway in ("alpha", "beta"):
        rabbit.simulator.control(f"gateways/{gateway}", down=True)
    order_id = place(rabbit)
    # The payment step fails and retries with a countdown, more than once.
    wait_until(
        lambda: db(
            rabbit,
            lambda: OrderStep.objects.filter(
                order_id=order_id, step="payment_prepare", attempts__gte=2
            ).exists(),
        ),
        timeout=20,
        what="the payment step retried",
    )
    for gateway in ("alpha", "beta"):
        rabbit.simulator.control(f"gateways/{gateway}", down=False)
    with rabbit.client() as client:
        order = rabbit.wait_for(client, order_id, timeout=30)
    assert order["status"] == "confirmed"
    # Each retry was published with its countdown (whole seconds, through the delay
    # queues) and came back to a worker when it was due.
    assert "Retry in" in (rabbit.log_dir / "worker.log").read_text()


def test_a_message_that_kills_its_worker_every_time_is_dead_lettered_and_flagged(rabbit):
    from orders.models import Order, OrderStep

    rabbit.simulator.reset()
    rabbit.restart("worker", COT_FAULT_INJECTION="crash_in_step:shipment")
    try:
        order_id = place(rabbit)
        wait_until(
            lambda: db(rabbit, lambda: Order.objects.get(pk=order_id).needs_attention),
            timeout=60,
            what="order flagged needs_attention",
        )
        order = db(rabbit, lambda: Order.objects.get(pk=order_id))
        runs = db(
            rabbit, lambda: OrderStep.objects.get(order_id=order_id, step="shipment").attempts
        )
        flags = db(
            rabbit,
            lambda: list(
                order.events.filter(type="order.needs_attention").values_list("data", flat=True)
            ),
        )
        # Delivered once and redelivered up to the limit, each run dying; then the broker
        # gave up on the message instead of the database's cap (100).
        assert order.status == "processing"
        assert runs == DELIVERY_LIMIT + 1
        assert flags == [
            {
                "step": "shipment",
                "attempts": DELIVERY_LIMIT + 1,
                "task": "orders.book_shipment",
                "dead_lettered": True,
            }
        ]
        assert rabbit.processes["worker"].poll() is None  # the worker itself survived
        ledger = rabbit.simulator.ledger()
        assert not [s for s in ledger["shipments"] if order_id in s["idempotency_key"]]
        assert len([c for c in ledger["charges"] if order_id in c["idempotency_key"]]) == 1
        # Nothing runs it again: no further delivery, no re-drive.
        time.sleep(3)
        assert (
            db(rabbit, lambda: OrderStep.objects.get(order_id=order_id, step="shipment").attempts)
            == runs
        )
        assert "dead letter: orders.book_shipment" in (rabbit.log_dir / "worker.log").read_text()
    finally:
        rabbit.restart("worker")
