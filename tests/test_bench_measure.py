"""Smoke test of the benchmark's pure functions (bench/measure.py). The benchmark itself
runs only under `make bench`, never in the test suite, and no test asserts a speed."""

from __future__ import annotations

import pytest

from bench.measure import (
    ProcStat,
    best_rate_within,
    cpu_seconds,
    descendants,
    machine_busy_ticks,
    percentile,
    proc_stat_parse,
    python_loop_seconds,
    ramp_next,
    schedule,
    soak_verdict,
    within_target,
)


def test_schedule_is_fixed_in_advance_and_near_the_rate() -> None:
    times = schedule(100, 30, seed=7)
    assert times == schedule(100, 30, seed=7)
    assert times != schedule(100, 30, seed=8)
    assert times == sorted(times)
    assert all(0 <= t < 30 for t in times)
    assert 2700 < len(times) < 3300  # Poisson: 3000 expected, sd ≈ 55
    assert schedule(0, 30) == [] and schedule(10, 0) == []


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0, 1.0), (50, 50.5), (99, 99.01), (100, 100.0)],
)
def test_percentile_interpolates_between_ranks(p: float, expected: float) -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, p) == pytest.approx(expected)


def test_percentile_of_nothing_and_of_one() -> None:
    assert percentile([], 99) is None
    assert percentile([0.25], 99) == 0.25


def test_proc_stat_parse_reads_a_command_with_spaces_and_parentheses() -> None:
    # proc(5): pid (comm) state ppid ... utime(14) stime(15) cutime(16) cstime(17) ... rss(24)
    fields = ["S", "41"] + ["0"] * 9 + ["700", "300", "20", "5"] + ["0"] * 6 + ["2048"]
    line = "1234 (celery (w) 1) " + " ".join(fields + ["0"] * 20) + "\n"
    stat = proc_stat_parse(line)
    assert (stat.pid, stat.comm, stat.ppid) == (1234, "celery (w) 1", 41)
    assert (stat.ticks, stat.child_ticks, stat.rss_pages) == (1000, 25, 2048)


def test_proc_stat_parse_reads_this_process() -> None:
    import os
    from pathlib import Path

    stat = proc_stat_parse(Path(f"/proc/{os.getpid()}/stat").read_text())
    assert stat.pid == os.getpid() and stat.ppid == os.getppid()
    assert stat.rss_pages > 0


def test_descendants_follow_the_tree() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 20: 1, 30: 99}
    assert descendants({10}, parents) == {10, 11, 12}
    assert descendants({10, 30}, parents) == {10, 11, 12, 30}
    assert descendants({404}, parents) == set()


def test_cpu_seconds_counts_new_processes_from_zero_and_a_reused_pid_afresh() -> None:
    def stat(pid: int, comm: str, ticks: int, child: int = 0) -> ProcStat:
        return ProcStat(pid=pid, comm=comm, ppid=1, ticks=ticks, child_ticks=child, rss_pages=1)

    before = {1: stat(1, "api", 100), 2: stat(2, "old", 500)}
    after = {1: stat(1, "api", 150, child=10), 2: stat(2, "new", 30), 3: stat(3, "w", 40)}
    assert cpu_seconds(before, after, ticks_per_second=100) == pytest.approx(1.3)


def test_machine_busy_ticks_leave_out_idle_and_iowait() -> None:
    text = "cpu  100 5 50 1000 30 2 3 4 0 0\ncpu0 50 2 25 500 15 1 1 2 0 0\n"
    assert machine_busy_ticks(text) == 100 + 5 + 50 + 2 + 3 + 4


def test_pss_splits_what_rss_counts_twice() -> None:
    # A forked child shares its parent's pages: RSS counts them in both, PSS splits them.
    import os
    import signal
    import time

    from bench import proc

    child = os.fork()
    if child == 0:  # pragma: no cover (the child only waits to be killed)
        time.sleep(30)
        os._exit(0)
    try:
        time.sleep(0.2)
        parts = {"parent": {os.getpid(): None}, "child": {child: None}}
        rss = proc.rss_bytes(proc.snapshot({"me": os.getpid()}, None))
        pss = proc.pss_bytes(parts)
        own = proc.pss_bytes({"parent": {os.getpid(): None}})
        assert 0 < own < pss <= rss
        assert proc.pss_bytes({"gone": {2**22 + 7: None}}) == 0  # no such process
        # The split: the forked child's heap is anon, the interpreter's libraries file.
        split = proc.pss_kib_by_part(parts)
        for sizes in split.values():
            assert sizes["anon"] > 0 and sizes["file"] > 0
            assert abs(sizes["anon"] + sizes["shmem"] + sizes["file"] - sizes["pss"]) <= 8
        # Read again a moment later: the same total, give or take what pytest allocated.
        assert sum(sizes["pss"] for sizes in split.values()) * 1024 == pytest.approx(pss, rel=0.1)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_ramp_climbs_while_steps_hold_then_bisects_and_stops_on_its_budget() -> None:
    assert ramp_next([(10, True)], factor=1.5, budget=4) == pytest.approx(15)
    assert ramp_next([(10, True), (15, True)], factor=1.5, budget=4) == pytest.approx(22.5)
    steps = [(10, True), (15, True), (22.5, False)]
    assert ramp_next(steps, factor=1.5, budget=4) == pytest.approx((15 * 22.5) ** 0.5)
    assert ramp_next([*steps, (18.4, True)], factor=1.5, budget=4) is None


def test_ramp_comes_down_until_a_step_holds() -> None:
    assert ramp_next([(30, False)], factor=1.5, budget=3) == pytest.approx(20)
    assert ramp_next([(30, False), (20, False)], factor=1.5, budget=3) == pytest.approx(20 / 1.5)


def test_ramp_stops_on_a_narrow_bracket_or_on_noise() -> None:
    assert ramp_next([(10, True), (11, False)], factor=1.5, budget=9) is None
    # A rate held above one that failed: the data say "around here", search no further.
    assert ramp_next([(20, False), (13.3, True), (25, True)], factor=1.5, budget=9) is None
    assert ramp_next([], factor=1.5, budget=3) is None


def test_python_loop_seconds_is_a_positive_cpu_time() -> None:
    assert 0 < python_loop_seconds(iterations=10_000, repeats=2) < 5


def test_best_rate_within_takes_sustained_steps_under_the_limit_only() -> None:
    def step(rate: float, over: float | None, sustained: bool = True) -> dict:
        return {"completed_per_s": rate, "p95_over_critical_path_s": over, "sustained": sustained}

    steps = [step(16.2, 0.286), step(19.2, 0.592), step(22.9, 0.2, sustained=False), step(9, None)]
    assert best_rate_within(steps, key="p95_over_critical_path_s", limit=0.3) == 16.2
    assert best_rate_within(steps, key="p95_over_critical_path_s", limit=0.6) == 19.2
    assert best_rate_within(steps, key="p95_over_critical_path_s", limit=0.1) is None
    assert best_rate_within([], key="p95_over_critical_path_s", limit=0.3) is None


def test_within_target_needs_a_sustained_step_with_a_known_latency_under_the_limit() -> None:
    assert within_target(True, 0.3, limit=0.3)
    assert not within_target(True, 0.31, limit=0.3)
    assert not within_target(False, 0.1, limit=0.3)  # p99 or completion failed
    assert not within_target(True, None, limit=0.3)  # nothing finished to measure


def test_the_seed_p95_probe_comes_down_from_a_knee_that_missed_it_then_bisects() -> None:
    # The knee search's seed steps as a full run left them (bda1f88): 23.6/s held p99 with
    # p95 726 ms over the critical path; the probe counts that step as not meeting 300 ms.
    knee = [(23.6, True, 0.726), (35.4, False, 2.1), (29.5, False, 1.4)]
    history = [(rate, within_target(held, over, limit=0.3)) for rate, held, over in knee]
    budget = len(knee) + 2
    assert ramp_next(history, factor=1.5, budget=budget) == pytest.approx(23.6 / 1.5)
    history.append((15.7, True))
    assert ramp_next(history, factor=1.5, budget=budget) == pytest.approx((15.7 * 23.6) ** 0.5)
    history.append((19.2, False))
    assert ramp_next(history, factor=1.5, budget=budget) is None  # its two steps are spent


def test_a_published_run_replaces_the_latest_one_and_adds_a_history_row():
    from bench.__main__ import published

    doc = "\n".join(
        [
            "# Benchmarks",
            "## Latest full run",
            "<!-- latest-run -->",
            "## History",
            "",
            "| date | commit | floor/s | zero/s | seed/s | inline/s | zero CPU ms/order | note |",
            "|---|---|---|---|---|---|---|---|",
            "| 2026-12-01 | abc1234 | 80 | 24 | 20 | 2.8 | 50 | old |",
            "",
            "## `load_catalog`",
            "| database | first load |",
            "|---|---|",
        ]
    )
    scenarios = {
        name: {"completed_per_s": rate, "cpu_ms_per_order": 40.0}
        for name, rate in {"floor": 81, "zero": 25, "seed": 22, "inline": 2.9}.items()
    }
    results = {
        "date": "2026-12-05",
        "mode": "full",
        "seconds": 600,
        "machine": "2 cores",
        "scenarios": scenarios,
    }
    once = published(doc, results, "TABLE ONE", note="first")
    twice = published(once, {**results, "date": "2026-12-06"}, "TABLE TWO", note="second")
    assert "TABLE ONE" not in twice and twice.count("TABLE TWO") == 1
    history = twice.split("## History")[1].split("## `load_catalog`")[0]
    rows = [line for line in history.splitlines() if line.startswith("| 2026")]
    assert [row.split(" | ")[0] for row in rows] == ["| 2026-12-01", "| 2026-12-05", "| 2026-12-06"]
    assert rows[1].endswith("| 81 | 25 | 22 | 2.9 | 40.0 | first |")
    assert twice.endswith("|---|---|")  # the next section's table is untouched


def test_soak_verdict_compares_the_first_and_last_windows() -> None:
    start, duration, window = 1000.0, 1200.0, 300.0
    # Steady latency 1 s for the first 15 minutes, 1.5 s in the last 5: p99 up 50 %.
    orders = [
        (start + t, start + t + (1.5 if t >= duration - window else 1.0))
        for t in range(0, int(duration))
    ]
    # 100 MiB flat until the end's minute, which averages 104 MiB: growth 4 %.
    pss = [(start + t, (104 if t >= duration - 60 else 100) * 2**20) for t in range(int(duration))]
    verdict = soak_verdict(orders, pss, start=start, duration=duration, window=window)
    assert verdict["p99_first_s"] == pytest.approx(1.0)
    assert verdict["p99_last_s"] == pytest.approx(1.5)
    assert verdict["p99_drift"] == pytest.approx(0.5)
    assert not verdict["p99_held"]
    assert verdict["pss_growth"] == pytest.approx(0.04)
    assert verdict["pss_held"]


def test_soak_verdict_without_finished_orders_holds_nothing() -> None:
    verdict = soak_verdict(
        [(1000.0, None)], [(1000.0, 1)], start=1000.0, duration=1200.0, window=300.0
    )
    assert verdict["p99_first_s"] is None and verdict["p99_drift"] is None
    assert not verdict["p99_held"] and not verdict["pss_held"]
