"""`make bench`: `python -m bench [--quick] [--soak] [--publish]`.

Starts the stack (bench/stack.py), runs the scenarios `floor`, `zero`, `seed`, `inline`
(and, with --soak, `soak`) one after another in one run, prints a table, writes
bench/results/latest.json and, with --publish, writes the run into docs/BENCHMARKS.md
(its latest full run and a history row). Method: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench import forecast, load, proc
from bench.measure import (
    best_rate_within,
    cpu_seconds,
    python_loop_seconds,
    ramp_next,
    schedule,
    soak_verdict,
    summary,
    within_target,
)
from bench.stack import API_WORKERS, ROOT, WORKERS, Stack

SEED_LATENCY = "intents=100,charges=500,refunds=300,shipments=400,notify=50"
# intent ‖ local checks, then charge, then booking (the seed scenario's latencies).
SEED_CRITICAL_PATH = 0.1 + 0.5 + 0.4
P99_LIMIT = 2.0
# The seed target: p95 end to end within the critical path plus this.
SEED_P95_MARGIN = 0.3
RESULTS = ROOT / "bench" / "results" / "latest.json"
DOC = ROOT / "docs" / "BENCHMARKS.md"
# The bench client's rate limits (placements and requests per second): above any rate a
# scenario offers, so the bench measures the stack, never the limiter refusing.
BENCH_CLIENT_LIMIT_PER_SECOND = 100_000

# Each ramped scenario searches for its highest sustained rate (errors 0, p99 end-to-end
# under 2 s, completed >= 90 % of offered): up by RAMP_FACTOR while steps hold, then
# bisecting (bench.measure.ramp_next), in at most `*_steps` steps. `floor` starts from
# `floor_start` scaled by this machine's Python speed against the machine the value was
# set on (REFERENCE_LOOP_S); `zero` starts from a share of the floor's result and `seed`
# from zero's, so the searches begin near their knees on a fast machine as on a slow one.
REFERENCE_LOOP_S = 0.14  # python_loop_seconds() on 2026-12-04, when floor_start was set
RAMP_FACTOR = 1.5
# The floor's knee moved between 25/s and beyond 48/s within one afternoon here (the Python
# loop read the same both times): it climbs in doublings, then bisects.
FLOOR_RAMP_FACTOR = 2.0
FULL = {
    "warmup": 5.0,
    "steady": 30.0,
    "floor_start": 16.0,
    "floor_steps": 4,
    "zero_share_of_floor": 0.3,
    "zero_steps": 3,
    "seed_steps": 3,
    # Then up to this many more seed steps look for the seed p95 target
    # (bench.measure.within_target), below the knee when the knee missed it.
    "seed_p95_steps": 2,
    "inline_rate": 4,
    "drain": 40.0,
}
# The soak: a long run at a share of zero's sustained rate under the seed latencies,
# judged by how its first and last windows compare (bench.measure.soak_verdict).
SOAK = {"minutes": 20.0, "share_of_zero": 0.7, "window_minutes": 5.0, "drain": 120.0}
QUICK = {
    **FULL,
    "warmup": 2.0,
    "steady": 8.0,
    "floor_steps": 2,
    "zero_steps": 2,
    "seed_steps": 1,
    "seed_p95_steps": 0,
    "drain": 10.0,
}


class Sampler:
    """CPU before/after and peak RSS and PSS (sampled every second) of the stack's
    processes, and CPU snapshots at the edges of the steady window (`window`)."""

    def __init__(self, stack: Stack, window: tuple[float, float]) -> None:
        self.stack = stack
        self.window = window
        self.window_snapshots: list[dict] = []
        # CPU by part inside the steady window; None if the step ended before it did.
        self.window_cpu: dict[str, float] | None = None
        self.peak = 0
        self.peak_pss = 0
        self.peak_by_part: dict[str, int] = {}
        # (time, bytes) every second: how the stack's memory moved over a long run, and
        # (time, {part: {kind: KiB}}) to tell which part moved and how (bench.proc).
        self.pss_series: list[tuple[float, int]] = []
        self.pss_by_part_series: list[tuple[float, dict[str, dict[str, int]]]] = []
        self._stop = threading.Event()

    def _parts(self) -> dict:
        return proc.snapshot(self.stack.roots(), self.stack.database)

    def __enter__(self) -> Sampler:
        self.before = self._parts()
        self.busy_before = proc.machine_busy_seconds()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._marks = threading.Thread(target=self._mark_window, daemon=True)
        self._marks.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._memory(self._parts())

    def _mark_window(self) -> None:
        for edge in self.window:
            if self._stop.wait(max(0.0, edge - time.time())):
                return
            self.window_snapshots.append(self._parts())

    def _memory(self, parts: dict) -> None:
        by_part = proc.pss_kib_by_part(parts)
        pss = sum(sizes["pss"] for sizes in by_part.values()) * 1024
        now = time.time()
        self.pss_series.append((now, pss))
        self.pss_by_part_series.append((now, by_part))
        self.peak = max(self.peak, proc.rss_bytes(parts))
        self.peak_pss = max(self.peak_pss, pss)
        for name, size in proc.rss_bytes_by_part(parts).items():
            self.peak_by_part[name] = max(self.peak_by_part.get(name, 0), size)

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._marks.join()
        after = self._parts()
        self.machine_busy = proc.machine_busy_seconds() - self.busy_before
        self._memory(after)
        self.cpu = {
            part: cpu_seconds(self.before.get(part, {}), stats, proc.TICKS)
            for part, stats in after.items()
        }
        # The steady window alone: no start-up, warm-up or drain in it.
        if len(self.window_snapshots) == 2:
            start, end = self.window_snapshots
            self.window_cpu = {
                part: cpu_seconds(start.get(part, {}), stats, proc.TICKS)
                for part, stats in end.items()
            }


def _orders(stack: Stack, tag: str) -> list[tuple[str, str, float, float | None]]:
    # Plain SQL on the benchmark's database: the order's own timestamps.
    with psycopg.connect(stack.database_url) as conn:
        return conn.execute(
            "SELECT customer_id, status, extract(epoch FROM created_at)::float8,"
            " extract(epoch FROM confirmed_at)::float8 FROM orders_order"
            " WHERE customer_id LIKE %s",
            (f"{tag}-%",),
        ).fetchall()


def _floor_done(stack: Stack) -> list[tuple[str, str, float, float | None]]:
    from bench.floor_app import DONE_KEY

    rows = redis.Redis.from_url(stack.redis_url).lrange(DONE_KEY, 0, -1)
    return [(oid, "confirmed", received, done) for oid, received, done in map(json.loads, rows)]


def _wait_done(fetch, expected: int, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while True:
        rows = fetch()
        finished = sum(1 for r in rows if r[1] not in ("received", "processing"))
        if finished >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def run_scenario(
    stack: Stack,
    name: str,
    rate: float,
    cfg: dict,
    *,
    floor: bool = False,
    critical_path: float | None = None,
) -> dict:
    tag = f"{name}{int(rate)}-{int(time.time())}"
    duration = cfg["warmup"] + cfg["steady"]
    times = schedule(rate, duration, seed=int(rate) + len(name))
    print(f"  {name} at {rate}/s for {duration:.0f}s ({len(times)} orders)…", flush=True)
    if floor:
        redis.Redis.from_url(stack.redis_url).delete("bench:floor:done")
    start = time.time() + 1.0
    window = (start + cfg["warmup"], start + duration)
    with Sampler(stack, window) as sampler:
        if floor:
            sends = asyncio.run(load.floor_drive(tag, times, start))
            fetch = lambda: _floor_done(stack)  # noqa: E731
        else:
            sends = asyncio.run(load.orders_drive(stack.api_url, stack.api_key, tag, times, start))
            fetch = lambda: _orders(stack, tag)  # noqa: E731
        accepted = sum(1 for s in sends if s.ok)
        rows = _wait_done(fetch, accepted, cfg["drain"])
    confirmed = [r for r in rows if r[1] == "confirmed" and r[3] is not None]
    in_window = [r for r in confirmed if window[0] <= r[3] < window[1]]
    steady = [r for r in confirmed if r[2] >= window[0]]
    e2e = [r[3] - r[2] for r in steady]
    api = [s.api_seconds for s in sends if s.api_seconds is not None]
    unfinished = sum(1 for r in rows if r[1] in ("received", "processing"))
    if floor:
        # Only finished canvases report back; the rest are still in the broker.
        unfinished = accepted - len(rows)
    failed = sum(1 for r in rows if r[1] not in ("received", "processing", "confirmed"))
    http_errors = sum(1 for s in sends if not s.ok)
    cpu_total = sum(sampler.cpu.values())
    window_ms_by_part = (
        {k: round(1000 * v / len(in_window), 1) for k, v in sampler.window_cpu.items()}
        if in_window and sampler.window_cpu
        else None
    )
    result = {
        "scenario": name,
        "offered_rate": rate,  # the arrival process's rate; offered_per_s is what it drew
        "offered_per_s": round(len(times) / duration, 1),
        "completed_per_s": round(len(in_window) / cfg["steady"], 1),
        "orders_sent": len(times),
        "orders_confirmed": len(confirmed),
        "e2e_s": {k: _round(v) for k, v in summary(e2e).items()},
        "api_s": {k: _round(v) for k, v in summary(api).items()} if not floor else None,
        # CPU spent inside the steady window per order confirmed inside it: the steady
        # state, without the processes' start-up, the warm-up or the drain. (Until
        # 2026-12-04 this was the whole step's CPU per order confirmed in the whole step.)
        "cpu_ms_per_order": (
            round(1000 * sum(sampler.window_cpu.values()) / len(in_window), 1)
            if in_window and sampler.window_cpu
            else None
        ),
        "cpu_ms_per_order_by_part": window_ms_by_part,
        "cpu_ms_per_order_whole_step": (
            round(1000 * cpu_total / len(confirmed), 1) if confirmed else None
        ),
        "cpu_s_by_part": {k: round(v, 2) for k, v in sampler.cpu.items()},
        # Everything the machine did meanwhile (the load process, the simulator and any
        # other work on it): the stack's share shows how undisturbed the run was.
        "machine_busy_cpu_s": round(sampler.machine_busy, 1),
        "stack_cpu_s": round(cpu_total, 1),
        "peak_rss_mib": round(sampler.peak / 2**20),
        # RSS counts shared pages once per process; PSS splits them (see bench/proc.py).
        "peak_pss_mib": round(sampler.peak_pss / 2**20),
        "peak_rss_mib_by_part": {k: round(v / 2**20) for k, v in sampler.peak_by_part.items()},
        "errors": {"http": http_errors, "failed_orders": failed, "unfinished": unfinished},
    }
    if critical_path is not None:
        result["critical_path_s"] = critical_path
        p95 = result["e2e_s"]["p95"]
        result["p95_over_critical_path_s"] = _round(p95 - critical_path) if p95 else None
    result["sustained"] = _sustained(result)
    print(f"    → {_line(result)}", flush=True)
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _sustained(r: dict) -> bool:
    errors = sum(r["errors"].values())
    p99 = r["e2e_s"]["p99"]
    return (
        errors == 0
        and p99 is not None
        and p99 < P99_LIMIT
        and r["completed_per_s"] >= 0.9 * r["offered_per_s"]
    )


def _within_p95_target(step: dict) -> bool:
    """The seed target for one step: sustained, with p95 end to end within the
    critical path plus SEED_P95_MARGIN."""
    return within_target(
        step["sustained"], step.get("p95_over_critical_path_s"), limit=SEED_P95_MARGIN
    )


def run_soak(stack: Stack, rate: float, minutes: float) -> dict:
    """`rate` orders/s for `minutes` under the seed latencies: errors, unfinished orders,
    and the first window against the last (p99 end to end, the stack's PSS)."""
    tag = f"soak{int(rate)}-{int(time.time())}"
    duration = minutes * 60
    window = min(SOAK["window_minutes"] * 60, duration / 4)
    times = schedule(rate, duration, seed=int(rate) + 4)
    print(f"  soak at {rate}/s for {minutes:g} min ({len(times)} orders)…", flush=True)
    start = time.time() + 1.0
    with Sampler(stack, (start, start + duration)) as sampler:
        sends = asyncio.run(load.orders_drive(stack.api_url, stack.api_key, tag, times, start))
        accepted = sum(1 for s in sends if s.ok)
        rows = _wait_done(lambda: _orders(stack, tag), accepted, SOAK["drain"])
    verdict = soak_verdict(
        [(r[2], r[3]) for r in rows if r[1] == "confirmed"],
        sampler.pss_series,
        start=start,
        duration=duration,
        window=window,
    )
    confirmed = sum(1 for r in rows if r[1] == "confirmed")
    result = {
        "scenario": "soak",
        "offered_per_s": round(len(times) / duration, 1),
        "minutes": minutes,
        "window_minutes": round(window / 60, 2),
        "orders_sent": len(times),
        "orders_confirmed": confirmed,
        "e2e_s": {k: _round(v) for k, v in summary([r[3] - r[2] for r in rows if r[3]]).items()},
        "cpu_ms_per_order": round(1000 * sum(sampler.cpu.values()) / confirmed, 1)
        if confirmed
        else None,
        "peak_pss_mib": round(sampler.peak_pss / 2**20),
        "errors": {
            "http": sum(1 for s in sends if not s.ok),
            "failed_orders": sum(
                1 for r in rows if r[1] not in ("received", "processing", "confirmed")
            ),
            "unfinished": accepted - sum(1 for r in rows if r[1] not in ("received", "processing")),
        },
        **{k: (_round(v) if isinstance(v, float) else v) for k, v in verdict.items()},
        # One point a minute is enough to see a trend in the doc.
        "pss_mib_by_minute": [
            round(size / 2**20) for t, size in sampler.pss_series if int(t - start) % 60 == 0
        ],
        # Which part grew, and whether as private heap or as a cache filling shared memory.
        "pss_mib_by_part": {
            "after_first_window": _pss_mib_at(sampler, start + window),
            "end": _pss_mib_at(sampler, start + duration),
        },
    }
    result["held"] = (
        sum(result["errors"].values()) == 0 and result["p99_held"] and result["pss_held"]
    )
    print(f"    → {soak_line(result)}", flush=True)
    return result


def _pss_mib_at(sampler: Sampler, moment: float) -> dict[str, dict[str, int]]:
    """The sample nearest `moment`, per part and kind, in MiB."""
    if not sampler.pss_by_part_series:
        return {}
    _, by_part = min(sampler.pss_by_part_series, key=lambda sample: abs(sample[0] - moment))
    return {
        part: {kind: round(kib / 1024) for kind, kib in sizes.items()}
        for part, sizes in by_part.items()
    }


def soak_parts_line(r: dict) -> str:
    """Each part's PSS after the first window and at the end, with its private heap and
    shared memory: what grew, and how."""
    first, end = r["pss_mib_by_part"]["after_first_window"], r["pss_mib_by_part"]["end"]
    parts = [
        f"{part} {first[part]['pss']}→{sizes['pss']} (anon {first[part]['anon']}→"
        f"{sizes['anon']}, shmem {first[part]['shmem']}→{sizes['shmem']})"
        for part, sizes in end.items()
        if part in first
    ]
    return "soak PSS by part, after the first window → end (MiB): " + ", ".join(parts) + "."


def soak_line(r: dict) -> str:
    def pct(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:+.0f} %"

    err = r["errors"]
    mib = lambda b: "–" if b is None else f"{b / 2**20:.0f}"  # noqa: E731
    return (
        f"soak at {r['offered_per_s']}/s for {r['minutes']:g} min under the seed latencies: "
        f"{r['orders_confirmed']} of {r['orders_sent']} orders confirmed, errors "
        f"{err['http']}/{err['failed_orders']}/{err['unfinished']} (http/failed/unfinished); "
        f"p99 {_ms(r['p99_first_s'])} ms in the first {r['window_minutes']:g} min, "
        f"{_ms(r['p99_last_s'])} ms in the last ({pct(r['p99_drift'])}); PSS "
        f"{mib(r['pss_after_first_window_bytes'])} MiB after the first window, "
        f"{mib(r['pss_end_bytes'])} MiB at the end ({pct(r['pss_growth'])}); "
        f"CPU {r['cpu_ms_per_order']} ms/order; {'held' if r['held'] else 'NOT held'}."
    )


def _best(steps: list[dict]) -> dict:
    ok = [s for s in steps if s["sustained"]]
    best = max(ok, key=lambda s: s["completed_per_s"]) if ok else steps[0]
    return {
        **best,
        "ramp": [
            {
                "offered_per_s": s["offered_per_s"],
                "completed_per_s": s["completed_per_s"],
                "e2e_p95_s": s["e2e_s"]["p95"],
                "e2e_p99_s": s["e2e_s"]["p99"],
                "p95_over_critical_path_s": s.get("p95_over_critical_path_s"),
                "sustained": s["sustained"],
            }
            for s in steps
        ],
    }


def _line(r: dict) -> str:
    e, a = r["e2e_s"], r["api_s"] or {}
    return (
        f"offered {r['offered_per_s']}/s completed {r['completed_per_s']}/s "
        f"e2e p50/p95/p99 {e['p50']}/{e['p95']}/{e['p99']} s "
        f"api p50/p99 {a.get('p50')}/{a.get('p99')} s cpu {r['cpu_ms_per_order']} ms/order "
        f"rss {r['peak_rss_mib']} MiB pss {r.get('peak_pss_mib')} MiB errors {r['errors']}"
    )


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{1000 * value:.0f}"


def table(results: dict) -> str:
    rows = [
        "| scenario | offered/s | completed/s | e2e p50 / p95 / p99 ms | API p50 / p99 ms "
        "| CPU ms/order | peak RSS / PSS MiB | errors (http/failed/unfinished) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("floor", "zero", "seed", "inline"):
        r = results["scenarios"][name]
        e, a, err = r["e2e_s"], r["api_s"] or {}, r["errors"]
        rows.append(
            f"| {name} | {r['offered_per_s']} | {r['completed_per_s']} | "
            f"{_ms(e['p50'])} / {_ms(e['p95'])} / {_ms(e['p99'])} | "
            f"{_ms(a.get('p50'))} / {_ms(a.get('p99'))} | {r['cpu_ms_per_order']} | "
            f"{r['peak_rss_mib']} / {r.get('peak_pss_mib', '–')} | "
            f"{err['http']}/{err['failed_orders']}/{err['unfinished']} |"
        )
    ratios = results["ratios"]
    held = results.get("seed_within_p95_target_per_s")
    rows.append("")
    rows.append(
        f"Ratios: zero/floor = {ratios['zero_over_floor']}, "
        f"seed/inline = {ratios['seed_over_inline']}. "
        f"seed p95 − critical path ({SEED_CRITICAL_PATH:.1f} s) = "
        f"{_ms(results['scenarios']['seed'].get('p95_over_critical_path_s'))} ms; "
        f"highest seed rate held with p95 ≤ critical path + {_ms(SEED_P95_MARGIN)} ms: "
        f"{f'{held}/s' if held else 'none'}."
    )
    loop = results.get("python_loop_s")
    if loop:
        rows.append(
            f"Python loop (2M additions, best of 3): {loop['before']:.2f} s before the run, "
            f"{loop['after']:.2f} s after."
        )
    for name in ("floor", "zero", "seed"):
        ramp = ", ".join(
            f"{s['offered_per_s']}→{s['completed_per_s']}/s p99 {_ms(s['e2e_p99_s'])} ms"
            f"{'' if s['sustained'] else ' ✗'}"
            for s in results["scenarios"][name]["ramp"]
        )
        rows.append(f"{name} ramp (offered→completed): {ramp}.")
    if "soak" in results["scenarios"]:
        soak = results["scenarios"]["soak"]
        rows.append(f"{soak_line(soak)} PSS by minute (MiB): {soak['pss_mib_by_minute']}.")
        rows.append(soak_parts_line(soak))
    for name in ("floor", "zero", "seed", "inline"):
        by_part = results["scenarios"][name].get("cpu_ms_per_order_by_part") or {}
        if by_part:
            parts = ", ".join(f"{part} {ms}" for part, ms in by_part.items())
            rows.append(f"{name} CPU ms per order by part (steady window): {parts}.")
    return "\n".join(rows)


def machine() -> str:
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    osname = "unknown"
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            osname = line.split("=", 1)[1].strip('"')
    return (
        f"{os.cpu_count()} cores, {mem:.0f} GiB RAM, {osname}, Python {platform.python_version()}"
    )


def _rates(text: str) -> list[float]:
    try:
        rates = [float(r) for r in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of rates: {text!r}") from None
    if not all(0 < r < 10_000 for r in rates):
        raise argparse.ArgumentTypeError("each rate must be above 0 and below 10000 per second")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about a minute, for development")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="write the run into docs/BENCHMARKS.md (latest run, history row)",
    )
    parser.add_argument(
        "--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
    )
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "cot_bench"))
    parser.add_argument("--note", default="", help="a line about this run, for the doc")
    parser.add_argument(
        "--soak",
        action="store_true",
        help=f"then the soak: {SOAK['minutes']:g} min at {SOAK['share_of_zero']:.0%}% of zero's "
        "sustained rate under the seed latencies (with --only soak, at --rates' first rate)",
    )
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=SOAK["minutes"],
        help="the soak's length (development; the published soak is the default)",
    )
    parser.add_argument(
        "--broker",
        choices=("redis", "amqp"),
        default=os.environ.get("BENCH_BROKER", "redis"),
        help="the broker: its own redis-server, or a vhost of its own on the local RabbitMQ",
    )
    parser.add_argument(
        "--only",
        default="floor,zero,seed,inline",
        help="comma-separated scenarios to run (development; a partial run is never published)",
    )
    parser.add_argument(
        "--rates",
        type=_rates,
        default=None,
        help="offered rates, e.g. 5,10, run by each scenario instead of its search (development)",
    )
    parser.add_argument(
        "--forecast",
        action="store_true",
        help="the forecasting benchmark instead (bench/forecast.py; make bench FORECAST=1)",
    )
    parser.add_argument("--forecast-skus", type=int, default=5000)
    parser.add_argument("--forecast-centers", type=int, default=5)
    parser.add_argument("--forecast-days", type=int, default=365)
    args = parser.parse_args()
    if args.forecast:
        forecast.run(
            pg_url=args.pg_url.rstrip("/"),
            database=f"{args.database}_forecast",
            skus=args.forecast_skus,
            centers=args.forecast_centers,
            days=args.forecast_days,
        )
        return
    cfg = dict(QUICK if args.quick else FULL)
    only = set(args.only.split(","))
    if args.soak:
        only.add("soak")
    fixed_rates = args.rates
    if only == {"soak"} and not fixed_rates:
        parser.error("--only soak needs --rates (the soak's rate comes from zero otherwise)")
    partial = (
        only - {"soak"} != {"floor", "zero", "seed", "inline"}
        or bool(args.rates)
        or args.soak_minutes != SOAK["minutes"]
    )
    if args.publish and partial:
        parser.error("--publish needs the whole run (no --only, no --rates)")
    began = time.time()
    loop_before = python_loop_seconds()
    speed = REFERENCE_LOOP_S / loop_before
    workdir = Path(tempfile.mkdtemp(prefix="cot-bench-"))
    stack = Stack(
        workdir=workdir, pg_url=args.pg_url.rstrip("/"), database=args.database, broker=args.broker
    )
    print(
        f"COT benchmark ({'quick' if args.quick else 'full'}); logs in {workdir}; "
        f"Python loop {loop_before:.2f} s ({speed:.2f}x the machine the start rates were set on)",
        flush=True,
    )
    scenarios: dict[str, Any] = {}

    def search(
        name: str,
        first: float,
        budget: int,
        factor: float = RAMP_FACTOR,
        then_within: tuple[Callable[[dict], bool], int] | None = None,
        **kwargs: Any,
    ) -> dict:
        """The knee search; then, with `then_within=(holds, extra)`, up to `extra` more
        steps searching the same way for the highest rate whose step `holds`."""
        steps: list[dict] = []
        rate: float | None = fixed_rates[0] if fixed_rates else round(max(first, 1.0), 1)
        while rate is not None:
            steps.append(run_scenario(stack, name, rate, cfg, **kwargs))
            if fixed_rates:
                rate = fixed_rates[len(steps)] if len(steps) < len(fixed_rates) else None
            else:
                history = [(s["offered_rate"], s["sustained"]) for s in steps]
                following = ramp_next(history, factor=factor, budget=budget)
                rate = None if following is None else round(following, 1)
        if then_within is not None and not fixed_rates:
            holds, extra = then_within
            budget = len(steps) + extra
            while True:
                history = [(s["offered_rate"], holds(s)) for s in steps]
                following = ramp_next(history, factor=factor, budget=budget)
                if following is None:
                    break
                steps.append(run_scenario(stack, name, round(following, 1), cfg, **kwargs))
        return _best(steps)

    try:
        stack.redis_start()
        stack.broker_start()
        # The floor canvas is sent from this process too.
        os.environ["BENCH_REDIS_URL"] = stack.redis_url
        os.environ["BENCH_BROKER_URL"] = stack.broker_url
        if "floor" in only:
            print("floor: no-op canvas on the same broker and pools", flush=True)
            stack.workers_start("bench.floor_app")
            scenarios["floor"] = search(
                "floor",
                cfg["floor_start"] * speed,
                cfg["floor_steps"],
                factor=FLOOR_RAMP_FACTOR,
                floor=True,
            )
            stack.stop(*(w["name"] for w in WORKERS))
            stack.redis_flush()
        if not only - {"floor"}:
            return _finish(args, scenarios, began, partial, loop_before)

        print("setting up: database, catalog, API client", flush=True)
        stack.simulator_start("")
        stack.database_create()
        catalog = workdir / "catalog.json"
        catalog.write_text(json.dumps(load.catalog()))
        stack.manage("load_catalog", str(catalog))
        # One client sends the whole load, far past the default 20 placements/s; its requests
        # are still counted in Redis, as in production.
        stack.api_key = stack.manage(
            "create_api_client",
            "bench",
            "--channel",
            "web",
            "--orders-per-second",
            str(BENCH_CLIENT_LIMIT_PER_SECOND),
            "--requests-per-second",
            str(BENCH_CLIENT_LIMIT_PER_SECOND),
        ).split()[0]
        stack.prometheus_reset()
        stack.api_start("celery")
        stack.workers_start("cot_project")

        # zero starts at a share of the floor's result (of its start rate without a floor
        # run); seed where zero held: the outside latencies add waiting, not work.
        floor_rate = scenarios.get("floor", {}).get("completed_per_s") or (
            cfg["floor_start"] * speed
        )
        zero_first = cfg["zero_share_of_floor"] * floor_rate
        if "zero" in only:
            print("zero: simulator without latency", flush=True)
            scenarios["zero"] = search("zero", zero_first, cfg["zero_steps"])
        if "seed" in only:
            print("seed: the simulator with realistic gateway and courier latencies", flush=True)
            _restart_with_latencies(stack, "celery")
            seed_first = scenarios.get("zero", {}).get("completed_per_s") or zero_first
            scenarios["seed"] = search(
                "seed",
                seed_first,
                cfg["seed_steps"],
                then_within=(_within_p95_target, cfg["seed_p95_steps"]),
                critical_path=SEED_CRITICAL_PATH,
            )
        if "inline" in only:
            print("inline: the same steps in the request, same latencies", flush=True)
            _restart_with_latencies(stack, "inline")
            scenarios["inline"] = _best(
                [
                    run_scenario(
                        stack,
                        "inline",
                        fixed_rates[0] if fixed_rates else cfg["inline_rate"],
                        cfg,
                        critical_path=SEED_CRITICAL_PATH,
                    )
                ]
            )
        if "soak" in only:
            print("soak: a long run under the seed latencies", flush=True)
            _restart_with_latencies(stack, "celery")
            rate = (
                fixed_rates[0]
                if only == {"soak"}
                else round(SOAK["share_of_zero"] * scenarios["zero"]["completed_per_s"], 1)
            )
            scenarios["soak"] = run_soak(stack, rate, args.soak_minutes)
    finally:
        stack.stop()
        stack.broker_stop()
    return _finish(args, scenarios, began, partial, loop_before)


def _restart_with_latencies(stack: Stack, pipeline_mode: str) -> None:
    """The simulator with the seed latencies, and the API and workers restarted in
    `pipeline_mode`. What an overloaded earlier step left queued would only compete with
    the next scenario: it was already counted (unfinished) where it belonged."""
    stack.simulator_start(SEED_LATENCY)
    stack.stop("api", *(w["name"] for w in WORKERS))
    stack.redis_flush()
    stack.api_start(pipeline_mode)
    stack.workers_start("cot_project", pipeline_mode=pipeline_mode)


def _finish(
    args: argparse.Namespace, scenarios: dict, began: float, partial: bool, loop_before: float
) -> None:
    if partial:
        # A development run: print each scenario's line, keep latest.json for full runs.
        for name, result in scenarios.items():
            if name == "soak":
                print(soak_line(result))
                print(soak_parts_line(result))
                continue
            print(f"{name}: {_line(result)}")
            print(f"    cpu s by part: {result['cpu_s_by_part']}, ramp: {result['ramp']}")
        return

    def ratio(a: str, b: str) -> float | None:
        x, y = scenarios[a]["completed_per_s"], scenarios[b]["completed_per_s"]
        return round(x / y, 2) if y else None

    loop_after = python_loop_seconds()
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        # CPU seconds of bench.measure.python_loop_seconds() (2M additions, best of 3)
        # before and after the run: compare runs only alongside these.
        "python_loop_s": {"before": round(loop_before, 3), "after": round(loop_after, 3)},
        "mode": "quick" if args.quick else "full",
        "seconds": round(time.time() - began),
        "setup": {
            "api": f"gunicorn, {API_WORKERS} sync workers",
            "workers": list(WORKERS),
            "database": "PostgreSQL",
            "redis": "own redis-server, AOF everysec",
            "broker": "Redis" if args.broker == "redis" else "RabbitMQ, quorum queues",
        },
        "scenarios": scenarios,
        "ratios": {
            "zero_over_floor": ratio("zero", "floor"),
            "seed_over_inline": ratio("seed", "inline"),
        },
        # The highest seed rate the run saw hold with p95 ≤ critical path + 300 ms.
        "seed_within_p95_target_per_s": best_rate_within(
            scenarios["seed"]["ramp"], key="p95_over_critical_path_s", limit=SEED_P95_MARGIN
        ),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    print()
    print(text)
    print(f"\n{RESULTS.relative_to(ROOT)} written ({results['seconds']} s).")
    if args.publish:
        DOC.write_text(published(DOC.read_text(), results, text, note=args.note))
        print(f"{DOC.relative_to(ROOT)}: latest full run replaced, history row added.")


LATEST_BEGIN, LATEST_END = "<!-- latest-run -->", "<!-- /latest-run -->"
SCENARIO_ORDER = ("floor", "zero", "seed", "inline")


def published(doc: str, results: dict, text: str, *, note: str) -> str:
    """docs/BENCHMARKS.md with this run as its latest full run and one more history row."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    block = (
        f"{LATEST_BEGIN}\n\nRun of {results['date']} ({results['mode']}), commit {commit or '—'}, "
        f"{results['seconds']} s. Machine: {results['machine']}. {note}\n\n{text}\n\n{LATEST_END}"
    )
    head, _, rest = doc.partition(LATEST_BEGIN)
    _, found, tail = rest.partition(LATEST_END)
    doc = head + block + (tail if found else rest)
    scenarios = results["scenarios"]
    row = (
        f"| {results['date']} | {commit or '—'} | "
        + " | ".join(str(scenarios[name]["completed_per_s"]) for name in SCENARIO_ORDER)
        + f" | {scenarios['zero']['cpu_ms_per_order']} | {note or '—'} |"
    )
    lines = doc.split("\n")
    table_start = next(
        i for i in range(lines.index("## History"), len(lines)) if lines[i].startswith("|")
    )
    table_end = table_start
    while table_end + 1 < len(lines) and lines[table_end + 1].startswith("|"):
        table_end += 1
    lines.insert(table_end + 1, row)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
