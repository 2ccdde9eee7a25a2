"""Pure functions of the benchmark: arrival schedules, percentiles, /proc parsing.

No I/O here, so the smoke test (tests/test_bench_measure.py) can check them quickly.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass


def schedule(rate: float, duration: float, *, seed: int = 1) -> list[float]:
    """Send times (seconds from the start) of an open-loop Poisson arrival process.

    Fixed in advance from a seeded generator: the generator sends at these times whatever
    the server does, and latency is measured from them, so a slow server cannot slow the
    arrivals down and hide its own queueing (no coordinated omission).
    """
    if rate <= 0 or duration <= 0:
        return []
    rng = random.Random(seed)
    times: list[float] = []
    t = rng.expovariate(rate)
    while t < duration:
        times.append(t)
        t += rng.expovariate(rate)
    return times


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (0 to 100) by linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    ppid: int
    # Clock ticks of this process (utime + stime) and of its reaped children (cutime + cstime).
    ticks: int
    child_ticks: int
    rss_pages: int


def proc_stat_parse(text: str) -> ProcStat:
    """Parse one `/proc/<pid>/stat` line (proc(5)). `comm` may hold spaces and
    parentheses, so the fields are split after its last `)`."""
    pid_part, _, rest = text.partition(" (")
    comm, _, fields_text = rest.rpartition(") ")
    fields = fields_text.split()
    # fields[0] is field 3 (state) in proc(5)'s numbering.
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    rss = int(fields[21])
    return ProcStat(
        pid=int(pid_part),
        comm=comm,
        ppid=ppid,
        ticks=utime + stime,
        child_ticks=cutime + cstime,
        rss_pages=rss,
    )


def descendants(roots: set[int], parents: dict[int, int]) -> set[int]:
    """Every pid in `parents` (pid → ppid) that is a root or descends from one."""
    found = set(roots) & set(parents)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def cpu_seconds(
    before: dict[int, ProcStat], after: dict[int, ProcStat], ticks_per_second: int
) -> float:
    """CPU spent between two snapshots by the processes of `after` (own + reaped
    children's time). A process that appeared in between counts from zero."""
    total = 0
    for pid, now in after.items():
        then = before.get(pid)
        start = (then.ticks + then.child_ticks) if then and then.comm == now.comm else 0
        total += now.ticks + now.child_ticks - start
    return total / ticks_per_second


def machine_busy_ticks(proc_stat_text: str) -> int:
    """Clock ticks all CPUs spent on anything but idling, from `/proc/stat`'s first line."""
    fields = [int(v) for v in proc_stat_text.split("\n", 1)[0].split()[1:]]
    idle, iowait = fields[3], fields[4]
    # guest time is already inside user time (proc(5)); count the first eight fields.
    return sum(fields[:8]) - idle - iowait


def summary(values: list[float]) -> dict[str, float | None]:
    return {f"p{p}": percentile(values, p) for p in (50, 95, 99)}


def ramp_next(
    steps: list[tuple[float, bool]], *, factor: float, budget: int, resolution: float = 1.15
) -> float | None:
    """The next offered rate of a search for the highest sustained one, or None to stop.

    `steps` are (offered rate, sustained?) in the order they ran. Up by `factor` while every
    step holds; once one fails, the geometric middle of the highest sustained and the
    lowest failed rate; down by `factor` while none has held yet. Stops after `budget`
    steps, or when the bracket is narrower than `resolution`, or when the noise put a
    sustained rate at or above a failed one (the best sustained step is the answer then).
    """
    if not steps or len(steps) >= budget:
        return None
    held = [rate for rate, sustained in steps if sustained]
    failed = [rate for rate, sustained in steps if not sustained]
    if not failed:
        return max(held) * factor
    if not held:
        return min(failed) / factor
    low, high = max(held), min(failed)
    if low >= high or high / low <= resolution:
        return None
    return math.sqrt(low * high)


def within_target(sustained: bool, over: float | None, *, limit: float) -> bool:
    """Whether a step meets a latency target: it was sustained, and its latency over the
    reference (e.g. p95 over the critical path, in seconds) is known and at most `limit`."""
    return sustained and over is not None and over <= limit


def best_rate_within(steps: list[dict], *, key: str, limit: float) -> float | None:
    """The highest completed rate among sustained steps whose `key` (e.g. p95 over the
    critical path, in seconds) is at most `limit`; None when no step qualifies. The
    seed target is such a pair (rate, p95 ≤ critical path + 300 ms), which the
    knee search (p99 under 2 s) does not look for by itself."""
    rates = [
        s["completed_per_s"]
        for s in steps
        if within_target(s["sustained"], s.get(key), limit=limit)
    ]
    return max(rates) if rates else None


def python_loop_seconds(iterations: int = 2_000_000, repeats: int = 3) -> float:
    """CPU seconds of a fixed pure-Python loop, best of `repeats`: how fast this machine
    runs Python right now. Runs on different days (or machines) compare only through it."""
    best = math.inf
    for _ in range(repeats):
        began = time.process_time()
        total = 0
        for i in range(iterations):
            total += i
        best = min(best, time.process_time() - began)
    return best


def soak_verdict(
    orders: list[tuple[float, float | None]],
    pss: list[tuple[float, int]],
    *,
    start: float,
    duration: float,
    window: float,
    p99_drift_limit: float = 0.2,
    pss_growth_limit: float = 0.05,
) -> dict:
    """How a long run at one rate aged: p99 end to end of the orders received in its first
    and in its last `window` seconds, and the stack's PSS growth after the first window.

    `orders` are (received, finished or None) wall times; `pss` (time, bytes) samples. The
    PSS baseline is the mean over the minute after the first window (start-up and warm
    caches are done by then), the end the mean over the run's last minute: means of
    one-second samples, so one collection or one pool growing for a moment does not decide.
    """
    end = start + duration

    def p99_received_in(low: float, high: float) -> float | None:
        return percentile([d - r for r, d in orders if d is not None and low <= r < high], 99)

    def mean_pss(low: float, high: float) -> float | None:
        sizes = [size for t, size in pss if low <= t < high]
        return sum(sizes) / len(sizes) if sizes else None

    first, last = p99_received_in(start, start + window), p99_received_in(end - window, end)
    baseline, final = mean_pss(start + window, start + window + 60), mean_pss(end - 60, end)
    drift = last / first - 1 if first and last is not None else None
    growth = final / baseline - 1 if baseline and final is not None else None
    return {
        "p99_first_s": first,
        "p99_last_s": last,
        "p99_drift": drift,
        "pss_after_first_window_bytes": baseline,
        "pss_end_bytes": final,
        "pss_growth": growth,
        "p99_held": drift is not None and drift <= p99_drift_limit,
        "pss_held": growth is not None and growth <= pss_growth_limit,
    }
