"""Chaos against a live stack of this module's own: faults caused for real (SIGKILL, a
Redis that loses every queue, gateways answering 500, an API server that never enqueues,
a step that kills its worker every time), then proof from the database and the
simulator's ledger that no order was lost and nobody was charged or booked twice.

The stack here has its own redis-server (no persistence, so a restart loses every queue
and chord counter), its own simulator, a prefork worker and Celery beat running the
sweeper with short windows. Figures for docs/RELIABILITY.md are printed (`-rP`).
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, Simulator, free_port, stop_process, wait_for_http
from orders.tests.factories import ORDER_BODY
from tests.e2e.conftest import RedisServer, Stack, api_keys, stack_start, wait_until

pytestmark = pytest.mark.e2e

CONCURRENCY = 8
STUCK_SECONDS = 10
SWEEP_SECONDS = 2
BREAKER_RESET_SECONDS = 2
BREAKER_THRESHOLD = 5


@pytest.fixture(scope="module")
def chaos(e2e_database: str, django_db_blocker: Any, tmp_path_factory: Any) -> Iterator[Stack]:
    redis_server = RedisServer(tmp_path_factory.mktemp("chaos-redis"))
    redis_server.start()
    sim_port = free_port()
    sim_proc = subprocess.Popen(
        [os.sys.executable, "-m", "simulator", "--port", str(sim_port)],
        cwd=ROOT,
        env={**os.environ, "SIM_LATENCY_MS": ""},
    )
    simulator = Simulator(f"http://127.0.0.1:{sim_port}")
    run = f"chaos-{uuid.uuid4().hex[:6]}"
    stack = None
    try:
        wait_for_http(f"{simulator.url}/healthz", proc=sim_proc)
        stack = stack_start(
            database_url=e2e_database,
            redis_url=redis_server.url,
            simulator=simulator,
            keys=api_keys(django_db_blocker, run),
            tmp_path_factory=tmp_path_factory,
            run=run,
            concurrency=CONCURRENCY,
            beat=True,
            env={
                "COT_STUCK_ORDER_SECONDS": str(STUCK_SECONDS),
                "COT_SWEEP_INTERVAL_SECONDS": str(SWEEP_SECONDS),
                "COT_BREAKER_RESET_SECONDS": str(BREAKER_RESET_SECONDS),
                "COT_BREAKER_FAILURE_THRESHOLD": str(BREAKER_THRESHOLD),
                # Orders wait out the gateway outage instead of failing.
                "COT_PAYMENT_MAX_WAIT_SECONDS": "180",
                # Re-drives every STUCK_SECONDS and retries under load count as attempts;
                # the cap itself is proven with a small one below.
                "COT_STEP_MAX_ATTEMPTS": "200",
            },
        )
        stack.redis = redis_server  # type: ignore[attr-defined]
        stack.django_db_blocker = django_db_blocker  # type: ignore[attr-defined]
        yield stack
    finally:
        if stack is not None:
            stack.stop()
        stop_process(sim_proc)
        redis_server.stop()


@pytest.fixture
def sim(chaos: Stack) -> Simulator:
    chaos.simulator.reset()
    import redis

    from core.breaker import KEY_PREFIX

    client = redis.Redis.from_url(chaos.redis.url)  # type: ignore[attr-defined]
    for key in client.scan_iter(f"*{KEY_PREFIX}*"):  # whatever the stack's key prefix
        client.delete(key)
    return chaos.simulator


def body() -> dict[str, Any]:
    data = copy.deepcopy(ORDER_BODY)
    data["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
    return data


def place(stack: Stack, n: int) -> list[str]:
    """Place `n` orders over HTTP, 8 at a time; every one must be accepted."""
    with stack.client() as client:

        def one(_: int) -> str:
            response = client.post("/api/v1/orders/", json=body())
            assert response.status_code == 202, response.text
            return response.json()["id"]

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(n)))


def db(stack: Stack, query: Callable[[], Any]) -> Any:
    with stack.django_db_blocker.unblock():  # type: ignore[attr-defined]
        return query()


def statuses(stack: Stack, ids: list[str]) -> Counter:
    from orders.models import Order

    return Counter(
        db(stack, lambda: list(Order.objects.filter(pk__in=ids).values_list("status", flat=True)))
    )


def wait_all(stack: Stack, ids: list[str], status: str = "confirmed", timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (counts := statuses(stack, ids))[status] < len(ids):
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout}s: {dict(counts)}")
        time.sleep(0.5)


def assert_one_capture_and_one_booking_each(sim: Simulator, ids: list[str]) -> dict[str, int]:
    ledger = sim.ledger()
    captures = Counter(
        c["idempotency_key"].split(":")[1] for c in ledger["charges"] if c["status"] == "captured"
    )
    bookings = Counter(s["idempotency_key"].split(":")[1] for s in ledger["shipments"])
    assert {i: captures[i] for i in ids} == dict.fromkeys(ids, 1)
    assert {i: bookings[i] for i in ids} == dict.fromkeys(ids, 1)
    assert not [r for r in ledger["refunds"] if r.get("charge_id")], ledger["refunds"]
    return {"captures": sum(captures[i] for i in ids), "bookings": sum(bookings[i] for i in ids)}


def worker_children(stack: Stack) -> list[int]:
    main = stack.processes["worker"].pid
    path = Path(f"/proc/{main}/task/{main}/children")
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def charges_in_flight(stack: Stack, sim: Simulator, ids: list[str]) -> int:
    """Charges the gateway has received whose capture the database does not know yet."""
    from payments.enums import PaymentStatus
    from payments.models import Payment

    sent = {c["idempotency_key"].split(":")[1] for c in sim.ledger()["charges"]}
    captured = db(
        stack,
        lambda: {
            str(i)
            for i in Payment.objects.filter(
                order_id__in=ids, status=PaymentStatus.CAPTURED
            ).values_list("order_id", flat=True)
        },
    )
    return len(sent - captured)


def test_api_server_dying_between_commit_and_enqueue_is_completed_by_the_sweeper(chaos, sim):
    chaos.restart("api", COT_FAULT_INJECTION="after_commit_before_enqueue")
    try:
        ids = place(chaos, 5)
        # Committed and answered 202, but no worker was ever told.
        assert statuses(chaos, ids) == {"received": 5}
    finally:
        chaos.restart("api")
    wait_all(chaos, ids, timeout=STUCK_SECONDS + 40)
    figures = assert_one_capture_and_one_booking_each(sim, ids)
    print(f"FIGURES fault=after_commit_before_enqueue orders=5 confirmed=5 {figures}")


def test_a_step_that_kills_its_worker_every_time_stops_at_the_attempt_cap(chaos, sim):
    from orders.models import Order, OrderStep

    chaos.restart("worker", COT_FAULT_INJECTION="crash_in_step:shipment", COT_STEP_MAX_ATTEMPTS="3")
    try:
        [order_id] = place(chaos, 1)
        wait_until(
            lambda: db(chaos, lambda: Order.objects.get(pk=order_id).needs_attention),
            timeout=60,
            what="order flagged needs_attention",
        )
        order = db(chaos, lambda: Order.objects.get(pk=order_id))
        attempts = db(
            chaos, lambda: OrderStep.objects.get(order_id=order_id, step="shipment").attempts
        )
        events = db(chaos, lambda: list(order.events.values_list("type", flat=True)))
        # Three runs died (os._exit in the step); the fourth flagged the order instead.
        assert (order.status, attempts) == ("processing", 4)
        assert events.count("order.needs_attention") == 1
        assert chaos.processes["worker"].poll() is None  # the worker itself survived
        ledger = sim.ledger()
        assert not [s for s in ledger["shipments"] if order_id in s["idempotency_key"]]
        assert len([c for c in ledger["charges"] if order_id in c["idempotency_key"]]) == 1
    finally:
        chaos.restart("worker")
    # Ops fixed the cause and cleared the flag (the admin action's service): the sweeper
    # picks the order up again and it completes, booked once.
    from orders.services.step_runs import order_clear_needs_attention

    assert db(chaos, lambda: order_clear_needs_attention(order_id=order_id))
    wait_all(chaos, [order_id], timeout=STUCK_SECONDS + 40)
    figures = assert_one_capture_and_one_booking_each(sim, [order_id])
    print(
        f"FIGURES fault=crash_in_step:shipment worker_deaths=3 attempts={attempts} flagged=1 "
        f"then cleared and confirmed {figures}"
    )


def test_sigkill_worker_children_mid_charge_then_the_whole_worker(chaos, sim):
    from orders.models import OrderStep

    n = 100
    sim.control("gateways/alpha", kind_latency_ms={"charges": 1000})
    ids = place(chaos, n)

    kills = 0
    for _ in range(2):
        wait_until(
            lambda: charges_in_flight(chaos, sim, ids) >= 2, timeout=60, what="charges in flight"
        )
        children = worker_children(chaos)
        for pid in children[:2]:
            os.kill(pid, signal.SIGKILL)
            kills += 1
        time.sleep(1.5)

    wait_until(
        lambda: charges_in_flight(chaos, sim, ids) >= 2, timeout=60, what="charges in flight"
    )
    done_before = statuses(chaos, ids)["confirmed"]
    # The whole worker (main process and children), as the OOM killer or a lost machine.
    victims = [chaos.processes["worker"].pid, *worker_children(chaos)]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    chaos.processes["worker"].wait()
    kills += len(victims)
    chaos.start("worker")

    wait_all(chaos, ids, timeout=150)
    figures = assert_one_capture_and_one_booking_each(sim, ids)
    redelivered = db(
        chaos,
        lambda: OrderStep.objects.filter(order_id__in=ids, step="charge", attempts__gt=1).count(),
    )
    # The kills landed mid-pipeline: some charges ran more than once, none captured twice.
    assert redelivered > 0
    print(
        f"FIGURES fault=sigkill orders={n} confirmed_before_worker_kill={done_before} "
        f"processes_killed={kills} charge_steps_rerun={redelivered} {figures}"
    )


def test_redis_restarted_without_persistence_under_load(chaos, sim):
    n = 60
    sim.control("gateways/alpha", kind_latency_ms={"charges": 300})
    ids = place(chaos, n)
    wait_until(
        lambda: statuses(chaos, ids)["confirmed"] >= 5, timeout=60, what="first confirmations"
    )
    done_before = statuses(chaos, ids)["confirmed"]
    chaos.redis.stop()  # type: ignore[attr-defined]
    # Orders placed while Redis is down are accepted: the database is the truth, the
    # doorbell rings later (the sweeper).
    during = place(chaos, 5)
    chaos.redis.start()  # type: ignore[attr-defined]  # empty: every queue and chord lost
    ids += during

    wait_all(chaos, ids, timeout=STUCK_SECONDS + 90)
    figures = assert_one_capture_and_one_booking_each(sim, ids)
    print(
        f"FIGURES fault=redis_restart orders={len(ids)} in_flight_at_restart="
        f"{n - done_before} placed_while_down=5 {figures}"
    )


def test_gateways_answering_500_open_breakers_then_orders_complete(chaos, sim):
    n, outage = 20, 20.0
    for gateway in ("alpha", "beta"):
        sim.control(f"gateways/{gateway}", error_rate=1.0)
    ids = place(chaos, n)
    time.sleep(outage)
    during = sim.requests()
    # Every order waits; none failed, none captured.
    assert statuses(chaos, ids) == {"processing": n}
    for gateway in ("alpha", "beta"):
        sim.control(f"gateways/{gateway}", error_rate=0.0)
    wait_all(chaos, ids, timeout=90)
    figures = assert_one_capture_and_one_booking_each(sim, ids)
    # Without breakers every order would call both gateways every ~2 s for the whole
    # outage (hundreds of calls). With them: the failures that open a breaker, the calls
    # already in flight then, and one probe per reset interval.
    bound = BREAKER_THRESHOLD + CONCURRENCY + outage / BREAKER_RESET_SECONDS + 2
    for gateway in ("alpha", "beta"):
        assert during[f"gateways/{gateway}"] <= bound, during
    print(
        f"FIGURES fault=gateways_500 orders={n} outage_s={outage} requests_during_outage="
        f"{ {g: during[f'gateways/{g}'] for g in ('alpha', 'beta')} } bound={bound} {figures}"
    )


def test_sigkill_workers_mid_refund_then_each_refund_is_made_once(chaos, sim):
    """Parcels come back to their centre (return to origin): each order's refund is
    written with its key and sent by a task. Workers killed while refunds are in flight,
    then the whole worker: every order is refunded exactly once, in full."""
    import json

    from django.conf import settings

    from core.webhooks import SIGNATURE_HEADER, webhook_signature
    from logistics.models import Shipment
    from payments.models import Payment, PaymentAttempt

    for partner in ("swift", "roadie"):
        sim.control(f"logistics/{partner}", courier=None)  # the test is the courier
    n = 12
    ids = place(chaos, n)
    wait_all(chaos, ids, timeout=120)
    sim.control("gateways/alpha", kind_latency_ms={"refunds": 1500})
    awbs = db(
        chaos,
        lambda: list(Shipment.objects.filter(order_id__in=ids).values_list("awb", flat=True)),
    )
    for awb in awbs:
        raw = json.dumps({"awb": awb, "status": "returned", "at": "2026-01-10T08:00:00Z"}).encode()
        signature = webhook_signature(settings.LOGISTICS_WEBHOOK_SECRET, raw)
        with chaos.client(None) as partner:
            answer = partner.post(
                "/api/v1/webhooks/logistics/",
                content=raw,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
            )
        assert answer.status_code == 200, answer.text

    def refunds_in_flight() -> int:
        return db(
            chaos,
            lambda: PaymentAttempt.objects.filter(
                payment__order_id__in=ids, kind="refund", status="started", sends__gte=1
            ).count(),
        )

    kills = 0
    for _ in range(2):
        wait_until(lambda: refunds_in_flight() >= 1, timeout=60, what="refunds in flight")
        for pid in worker_children(chaos)[:2]:
            os.kill(pid, signal.SIGKILL)
            kills += 1
        time.sleep(1.0)
    victims = [chaos.processes["worker"].pid, *worker_children(chaos)]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    chaos.processes["worker"].wait()
    kills += len(victims)
    chaos.start("worker")

    def refunded() -> int:
        return db(
            chaos,
            lambda: Payment.objects.filter(order_id__in=ids, status="refunded").count(),
        )

    wait_until(lambda: refunded() == n, timeout=180, what=f"{n} payments refunded")
    wait_all(chaos, ids, status="returned", timeout=30)
    ledger = sim.ledger()
    refunds = Counter(r["idempotency_key"].split(":")[1] for r in ledger["refunds"])
    assert {i: refunds[i] for i in ids} == dict.fromkeys(ids, 1)
    totals = db(
        chaos,
        lambda: {
            str(p.order_id): f"{p.amount:.2f}" for p in Payment.objects.filter(order_id__in=ids)
        },
    )
    assert {r["idempotency_key"].split(":")[1]: r["amount"] for r in ledger["refunds"]} == totals
    resent = db(
        chaos,
        lambda: PaymentAttempt.objects.filter(
            payment__order_id__in=ids, kind="refund", sends__gt=1
        ).count(),
    )
    print(f"FIGURES fault=sigkill-refunds orders={n} processes_killed={kills} resent={resent}")
