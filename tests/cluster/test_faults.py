"""Faults of a deployment over several hosts, under load (docs/RELIABILITY.md, "Beyond
one machine"): a worker host lost (every process SIGKILLed at once, its link down), a
worker host cut off from the broker for a minute, a rolling restart of the workers, and
PostgreSQL restarted. Each runs against orders placed over HTTP while it happens, then
proves from the database and the simulator's ledger that every accepted order ended in
its proper status, nothing was charged, refunded or booked twice, and no unit was
oversold. Figures for docs/RELIABILITY.md are printed (`-rP`).
"""

from __future__ import annotations

import copy
import signal
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from django.db.models import Q

from orders.tests.factories import ORDER_BODY
from tests.cluster.conftest import DATABASE_ALIAS, SCARCE_SKUS, SCARCE_UNITS, Cluster
from tests.e2e.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

DB = DATABASE_ALIAS
# What each kind of order must end as, whatever dies meanwhile.
PROPER = {
    "ok": {("confirmed", None)},
    "declined": {("payment_failed", "payment_declined")},
    # Competing for SCARCE_UNITS: either it got its units or there were none left.
    "scarce": {("confirmed", None), ("rejected", "out_of_stock")},
}
SCARCE_QUANTITY = 2


@dataclass
class Order:
    kind: str
    body: dict[str, Any]
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    id: str | None = None


def orders_mix(count: int, scarce_sku: str) -> list[Order]:
    """Mostly orders that confirm; one in eight declined at the gateway, one in eight for
    the scarce product (more asked for than there is)."""
    orders = []
    for i in range(count):
        body = copy.deepcopy(ORDER_BODY)
        body["customer_id"] = f"C-{uuid.uuid4().hex[:10]}"
        kind = {3: "declined", 6: "scarce"}.get(i % 8, "ok")
        if kind == "declined":
            body["payment_token"] = "tok_decline"
        if kind == "scarce":
            body["items"] = [{"sku": scarce_sku, "quantity": SCARCE_QUANTITY}]
        orders.append(Order(kind=kind, body=body))
    return orders


class Load:
    """Places `orders` over HTTP at `rate` per second from a few threads, in the
    background, as a client would: each with its Idempotency-Key, and a 503 retried with
    the same key a second later (bounded). Every answer is checked against the published
    schema by the stack's client."""

    def __init__(self, cluster: Cluster, orders: list[Order], rate: float) -> None:
        self.orders = orders
        self.rate = rate
        self.client = cluster.stack.client("web", timeout=30.0)
        self.refusals: list[httpx.Response] = []  # 503s
        self.unexpected: list[str] = []  # anything but 202 and 503
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(4)
        self.started = time.monotonic()
        self.futures = [self.pool.submit(self.place, i, o) for i, o in enumerate(orders)]

    def place(self, index: int, order: Order) -> None:
        time.sleep(max(0.0, self.started + index / self.rate - time.monotonic()))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                answer = self.client.post(
                    "/api/v1/orders/", json=order.body, headers={"Idempotency-Key": order.key}
                )
            except Exception as exc:
                with self.lock:
                    self.unexpected.append(f"{type(exc).__name__}: {exc}")
                return
            if answer.status_code == 202:
                order.id = answer.json()["id"]
                return
            if answer.status_code != 503:
                with self.lock:
                    self.unexpected.append(f"{answer.status_code} {answer.text[:300]}")
                return
            with self.lock:
                self.refusals.append(answer)
            time.sleep(1.0)
        with self.lock:
            self.unexpected.append(f"order {order.key} still refused after 90 s")

    @property
    def accepted(self) -> list[str]:
        return [o.id for o in self.orders if o.id is not None]

    def join(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for future in self.futures:
            future.result(timeout=max(0.1, deadline - time.monotonic()))
        self.pool.shutdown()
        self.client.close()
        assert not self.unexpected, self.unexpected
        assert len(self.accepted) == len(self.orders)


def confirmed_count(cluster: Cluster, ids: list[str]) -> int:
    from orders.models import Order as OrderRow

    return cluster.db(
        lambda: OrderRow.objects.using(DB).filter(pk__in=ids, status="confirmed").count()
    )


def settle(cluster: Cluster, ids: list[str], timeout: float = 150) -> None:
    """Until no order of the cluster is in `received`/`processing` (the fault's included);
    on a timeout, the failure shows what the unfinished orders and the database's
    sessions are waiting for."""
    from orders.models import Order as OrderRow
    from orders.models import OrderStep

    def unfinished() -> list[str]:
        rows = OrderRow.objects.using(DB)
        missing = len(ids) - rows.filter(pk__in=ids).count()
        waiting = rows.filter(status__in=("received", "processing"))
        return [f"{missing} accepted orders missing"] * bool(missing) + [
            str(pk) for pk in waiting.values_list("pk", flat=True)
        ]

    try:
        wait_until(lambda: not cluster.db(unfinished), timeout=timeout, what="every order settled")
    except AssertionError:
        waiting = cluster.db(unfinished)
        steps = cluster.db(
            lambda: list(
                OrderStep.objects.using(DB)
                .filter(order_id__in=[w for w in waiting if " " not in w])
                .values_list("order_id", "step", "attempts", "result")
            )
        )
        raise AssertionError(
            f"unfinished: {waiting}\nsteps: {steps}\nsessions: {cluster.database_sessions()}"
        ) from None


def check_invariants(cluster: Cluster, orders: list[Order]) -> dict[str, Any]:
    """The guarantees, from the database and the simulator's ledger; returns figures."""
    from inventory.models import ReservationItem, StockBatch
    from logistics.models import Shipment
    from orders.models import Order as OrderRow
    from orders.models import OrderStep

    ids = [o.id for o in orders]
    rows = cluster.db(
        lambda: {
            str(pk): (status, reason or None)
            for pk, status, reason in OrderRow.objects.using(DB)
            .filter(pk__in=ids)
            .values_list("pk", "status", "failure_reason")
        }
    )
    # Every accepted order in its proper final status.
    improper = {o.id: (o.kind, rows[o.id]) for o in orders if rows[o.id] not in PROPER[o.kind]}
    assert not improper, improper
    unfinished = Q(status__in=("received", "processing")) | Q(needs_attention=True)
    assert not cluster.db(lambda: OrderRow.objects.using(DB).filter(unfinished).exists())

    # One capture per confirmed order, none for the others, no refund anywhere.
    ledger = cluster.simulator.ledger()
    captures = Counter(
        c["idempotency_key"].split(":")[1] for c in ledger["charges"] if c["status"] == "captured"
    )
    assert max(captures.values(), default=0) <= 1, [k for k, n in captures.items() if n > 1]
    assert ledger["refunds"] == [], ledger["refunds"]
    confirmed = {o.id for o in orders if rows[o.id][0] == "confirmed"}
    assert {i: captures[i] for i in ids} == {i: int(i in confirmed) for i in ids}

    # One booking per shipment: each booking attempt's key is the shipment's key and the
    # attempt's number (attempts may go to other partners); of all of them, exactly one
    # booked, and the shipment in the database holds that booking's airway bill.
    bookings = Counter(s["idempotency_key"].rsplit(":", 1)[0] for s in ledger["shipments"])
    assert max(bookings.values(), default=0) <= 1, [k for k, n in bookings.items() if n > 1]
    booked_awbs = {s["idempotency_key"].rsplit(":", 1)[0]: s["awb"] for s in ledger["shipments"]}
    shipments = cluster.db(
        lambda: dict(Shipment.objects.using(DB).values_list("idempotency_key", "awb"))
    )
    assert booked_awbs == shipments
    shipped_orders = cluster.db(
        lambda: set(
            Shipment.objects.using(DB).filter(order_id__in=ids).values_list("order_id", flat=True)
        )
    )
    assert {str(i) for i in shipped_orders} == confirmed

    # No unit oversold: what left each batch is what confirmed orders committed, what is
    # reserved is what live reservations hold (none: every order ended), never below 0.
    def stock() -> list[tuple[int, int, int, int, int]]:
        held: Counter = Counter()
        committed: Counter = Counter()
        for batch, quantity, status in ReservationItem.objects.using(DB).values_list(
            "batch_id", "quantity", "reservation__status"
        ):
            if status == "held":
                held[batch] += quantity
            elif status == "committed":
                committed[batch] += quantity
        batches = StockBatch.objects.using(DB).values_list("pk", "on_hand", "reserved")
        return [
            (pk, on_hand, reserved, held[pk], committed[pk]) for pk, on_hand, reserved in batches
        ]

    wrong = [
        (pk, on_hand, reserved, held, committed)
        for pk, on_hand, reserved, held, committed in cluster.db(stock)
        if not 0 <= reserved <= on_hand
        or reserved != held
        or held
        or on_hand != cluster.initial_on_hand[pk] - committed
    ]
    assert not wrong, wrong
    scarce = [o for o in orders if o.kind == "scarce"]
    sold = sum(SCARCE_QUANTITY for o in scarce if rows[o.id][0] == "confirmed")
    # More was asked for than there was: exactly the stock sold, not a unit more.
    assert sold == SCARCE_UNITS, (sold, [rows[o.id] for o in scarce])

    reruns = cluster.db(
        lambda: OrderStep.objects.using(DB).filter(order_id__in=ids, attempts__gt=1).count()
    )
    statuses = Counter(f"{s}/{r}" if r else s for s, r in (rows[i] for i in ids))
    return {"orders": len(ids), "statuses": dict(statuses), "steps_rerun": reruns}


def test_losing_a_worker_host_under_load(healthy: Cluster) -> None:
    cluster = healthy
    load = Load(cluster, orders_mix(48, SCARCE_SKUS[0]), rate=4)
    # In full swing: orders confirming, and the host about to be lost running some.
    wait_until(
        lambda: (
            confirmed_count(cluster, load.accepted) >= 8 and cluster.order_tasks_running("w1") >= 1
        ),
        timeout=30,
        what="w1 running orders' tasks",
    )
    lost_at = time.monotonic()
    victims = cluster.lose_host("w1")
    load.join()
    settle(cluster, load.accepted)
    recovered = time.monotonic() - lost_at
    figures = check_invariants(cluster, load.orders)
    print(
        f"FIGURES fault=worker_host_lost processes_killed={len(victims)} "
        f"settled_after_s={recovered:.0f} {figures}"
    )


def test_a_worker_host_cut_off_from_the_broker_for_a_minute(healthy: Cluster) -> None:
    cluster = healthy
    load = Load(cluster, orders_mix(60, SCARCE_SKUS[1]), rate=1.5)
    wait_until(lambda: cluster.order_tasks_running("w1") >= 1, timeout=30, what="w1 running tasks")
    cluster.host("w1").link_down()
    cut_at = time.monotonic()
    try:
        # The other host carries on meanwhile: orders placed during the cut confirm.
        before = load.accepted
        wait_until(
            lambda: confirmed_count(cluster, [i for i in load.accepted if i not in before]) >= 5,
            timeout=50,
            what="orders placed during the cut confirmed by w2",
        )
        time.sleep(max(0.0, cut_at + 60 - time.monotonic()))
    finally:
        cluster.host("w1").link_up()
    healed_at = time.monotonic()
    load.join()
    # The cut host comes back by itself (its connections resume), with what it held.
    cluster.wait_ready("w1", timeout=120)
    back_after = time.monotonic() - healed_at
    settle(cluster, load.accepted)
    wait_until(lambda: cluster.order_tasks_running("w1") == 0, timeout=60, what="w1 idle")
    figures = check_invariants(cluster, load.orders)
    print(
        f"FIGURES fault=worker_host_cut cut_s={healed_at - cut_at:.0f} w1_back_after_s="
        f"{back_after:.0f} {figures}"
    )


def test_rolling_restart_of_the_workers_under_load(healthy: Cluster) -> None:
    cluster = healthy
    load = Load(cluster, orders_mix(48, SCARCE_SKUS[2]), rate=2)
    busy_at_sigterm = {}
    for host in ("w1", "w2"):
        wait_until(
            lambda host=host: cluster.order_tasks_running(host) >= 1,
            timeout=30,
            what=f"{host} running tasks",
        )
        busy_at_sigterm[host] = cluster.order_tasks_running(host)
        for proc in cluster.worker_processes(host):
            proc.send_signal(signal.SIGTERM)
        for proc in cluster.worker_processes(host):
            # Warm shutdown: running tasks finish (each is held to COT_TASK_TIME_LIMIT).
            assert proc.wait(timeout=60) == 0
        cluster.start_workers(host)
    load.join()
    settle(cluster, load.accepted)
    figures = check_invariants(cluster, load.orders)
    print(f"FIGURES fault=rolling_restart tasks_running_at_sigterm={busy_at_sigterm} {figures}")


def test_postgresql_restarted_under_load(healthy: Cluster) -> None:
    cluster = healthy
    load = Load(cluster, orders_mix(48, SCARCE_SKUS[3]), rate=3)
    wait_until(
        lambda: confirmed_count(cluster, load.accepted) >= 5, timeout=30, what="confirmations"
    )
    stopped_at = time.monotonic()
    ready: list[httpx.Response] = []

    def while_down() -> None:
        # Requests meanwhile: 503 in the error shape, never a 500 (and /readyz says why).
        wait_until(lambda: len(load.refusals) >= 3, timeout=40, what="requests refused")
        ready.append(httpx.get(f"{cluster.stack.api_url}/readyz", timeout=10))

    cluster.restart_database(while_down)
    outage = time.monotonic() - stopped_at
    [ready] = ready
    assert ready.status_code == 503 and "database" in ready.json()["down"], ready.text
    load.join()
    for refusal in load.refusals:
        assert refusal.json()["errors"][0]["code"] == "service_unavailable", refusal.text
        assert refusal.headers["Retry-After"]
    settle(cluster, load.accepted)
    figures = check_invariants(cluster, load.orders)
    print(
        f"FIGURES fault=postgres_restart outage_s={outage:.0f} refused_503={len(load.refusals)} "
        f"{figures}"
    )
