"""CPU per pipeline step in this process, without Celery: places N orders and runs each
step inline, then the customer messages they trigger, timing `time.thread_time()` (the
database and the simulator are other processes, so this is the steps' own Python) and the
CPU of this script's PostgreSQL server processes (from /proc: the database must run here).
With `--profile FILE` it also writes a cProfile of the steps (read it with `python -m pstats FILE`).

    DATABASE_URL=postgres://…/a_migrated_scratch_db REDIS_URL=redis://…/N \
        .venv/bin/python scripts/step_profile.py [-n 200] [--profile out.prof]

Like scripts/step_queries.py it loads BENCH-* products and an API client into that
database: use a scratch one.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cot_project.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=200, help="orders to time (after 5 warm-up ones)")
    parser.add_argument("--profile", help="write a cProfile of the timed orders here")
    args = parser.parse_args()
    port = "8598"
    simulator = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "simulator", "--port", port], cwd=ROOT
    )
    os.environ["SIMULATOR_URL"] = f"http://127.0.0.1:{port}"
    try:
        time.sleep(1.5)
        run(orders=args.n, profile_path=args.profile)
    finally:
        simulator.terminate()


def run(*, orders: int, profile_path: str | None) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from bench import load
    from core.models import ApiClient
    from notifications.services.messages import notification_send_all
    from orders.pipeline import INLINE_STEPS
    from orders.services.placement import ItemRequest, order_place

    notified: list[tuple[str, str]] = []

    class _Recorder:  # stands in for the notify task: the messages run inline below
        @staticmethod
        def delay(order_id: str, event_type: str, event_id: int = 0) -> None:
            notified.append((order_id, event_type, event_id))

    with tempfile.NamedTemporaryFile("w", suffix=".json") as catalog:
        json.dump(load.catalog(50), catalog)
        catalog.flush()
        call_command("load_catalog", catalog.name, verbosity=0)
    client, _ = ApiClient.objects.get_or_create(name="step-profile", defaults={"channel": "web"})
    rng = random.Random(1)
    cpu: dict[str, float] = defaultdict(float)
    database: dict[str, float] = defaultdict(float)
    backends: list[int] = []
    profiler = cProfile.Profile(time.thread_time) if profile_path else None
    for index in range(orders + 5):
        timed = index >= 5  # the first orders warm caches, like a live worker's first tasks
        if index == 5:
            backends = _backends()
        body = load.order_body(f"p{index}", rng)
        started, db_started = time.thread_time(), _cpu(backends)
        if timed and profiler:
            profiler.enable()
        with (
            mock.patch("orders.pipeline.start"),
            mock.patch("notifications.receivers.notify_customer", _Recorder),
        ):
            order = order_place(
                client=client,
                customer_id=body["customer_id"],
                items=[ItemRequest(sku=f"BENCH-{index % 50:04d}", quantity=1)],
                delivery_address=body["delivery_address"],
                payment_method="upi",
                payment_token="tok_ok",  # noqa: S106 (the simulator's test token)
                prescription_id=None,
            ).order
        if timed:
            cpu["place"] += time.thread_time() - started
            database["place"] += _cpu(backends) - db_started
        with mock.patch("notifications.receivers.notify_customer", _Recorder):
            for step, function in INLINE_STEPS:
                started, db_started = time.thread_time(), _cpu(backends)
                function(order.pk)
                if timed:
                    cpu[str(step)] += time.thread_time() - started
                    database[str(step)] += _cpu(backends) - db_started
        started, db_started = time.thread_time(), _cpu(backends)
        while notified:
            order_id, event_type, event_id = notified.pop()
            notification_send_all(
                order_id=uuid.UUID(order_id), event_type=event_type, event_id=event_id
            )
        if timed:
            cpu["notify"] += time.thread_time() - started
            database["notify"] += _cpu(backends) - db_started
        if timed and profiler:
            profiler.disable()
    print(f"{'':>16}  {'Python':>9} {'PostgreSQL':>11}  (CPU per order)")
    for name, seconds in cpu.items():
        per_order, in_database = seconds / orders * 1000, database[name] / orders * 1000
        print(f"{name:>16}: {per_order:6.2f} ms {in_database:8.2f} ms")
    total, total_db = sum(cpu.values()), sum(database.values())
    print(f"{'total':>16}: {total / orders * 1000:6.2f} ms {total_db / orders * 1000:8.2f} ms")
    if profiler:
        profiler.dump_stats(profile_path)


def _backends() -> list[int]:
    """This database's server processes (this script's pooled connections), whose CPU
    is read from /proc: PostgreSQL runs on this machine."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [pid for (pid,) in cursor.fetchall()] if connection.vendor == "postgresql" else []


def _cpu(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a connection the pool closed
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
