"""Snapshots of the stack's processes from /proc: CPU ticks and resident memory."""

from __future__ import annotations

import os
from pathlib import Path

from bench.measure import ProcStat, descendants, machine_busy_ticks, proc_stat_parse

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# PostgreSQL's shared helpers write for every database; counted in full (an overestimate
# when something else uses the same server at the same time).
PG_HELPERS = ("walwriter", "checkpointer", "background writer")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _all() -> dict[int, ProcStat]:
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            text = _read(f"/proc/{entry}/stat")
            if text:
                stats[int(entry)] = proc_stat_parse(text)
    return stats


def _postgres_pids(stats: dict[int, ProcStat], database: str) -> set[int]:
    pids = set()
    for pid, stat in stats.items():
        if stat.comm != "postgres":
            continue
        cmdline = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ")
        words = cmdline.split()
        if database in words or any(helper in cmdline for helper in PG_HELPERS):
            pids.add(pid)
    return pids


def rabbitmq_pid() -> int | None:
    """The local RabbitMQ server's Erlang VM (`beam.smp` running `rabbit`), if any."""
    for entry in os.listdir("/proc"):
        if (
            entry.isdigit()
            and (_read(f"/proc/{entry}/comm") or "").strip() == "beam.smp"
            and "rabbit" in (_read(f"/proc/{entry}/cmdline") or "").split("\0")
        ):
            return int(entry)
    return None


def snapshot(roots: dict[str, int], database: str | None) -> dict[str, dict[int, ProcStat]]:
    """The processes of each named part (its root pid and every descendant), plus the
    PostgreSQL backends serving `database` as `postgres`."""
    stats = _all()
    parents = {pid: stat.ppid for pid, stat in stats.items()}
    parts = {
        name: {pid: stats[pid] for pid in descendants({root}, parents)}
        for name, root in roots.items()
    }
    if database:
        parts["postgres"] = {pid: stats[pid] for pid in _postgres_pids(stats, database)}
    return parts


def rss_bytes(parts: dict[str, dict[int, ProcStat]]) -> int:
    # RSS counts shared pages (PostgreSQL's shared buffers, forked workers' copy-on-write
    # pages) once per process: a ceiling, never an underestimate.
    return sum(stat.rss_pages for part in parts.values() for stat in part.values()) * PAGE


# smaps_rollup's split of PSS: private heap (`anon`), shared memory such as PostgreSQL's
# shared buffers (`shmem`) and mapped files (`file`: libraries, Prometheus' multiprocess
# files). A leak grows `anon`; a cache filling up grows `shmem`.
PSS_KINDS = {"Pss:": "pss", "Pss_Anon:": "anon", "Pss_Shmem:": "shmem", "Pss_File:": "file"}


def pss_kib_by_part(parts: dict[str, dict[int, ProcStat]]) -> dict[str, dict[str, int]]:
    """Per part, PSS and its anon/shmem/file split, in KiB (proc(5), `smaps_rollup`)."""
    by_part = {}
    for name, part in parts.items():
        sizes = dict.fromkeys(PSS_KINDS.values(), 0)
        for pid in part:
            for line in (_read(f"/proc/{pid}/smaps_rollup") or "").splitlines():
                field, _, value = line.partition(" ")
                if field in PSS_KINDS:
                    sizes[PSS_KINDS[field]] += int(value.split()[0])
        by_part[name] = sizes
    return by_part


def pss_bytes(parts: dict[str, dict[int, ProcStat]]) -> int:
    """Proportional set size (proc(5), `smaps_rollup`): each shared page split among the
    processes sharing it, so the sum is the stack's memory without counting PostgreSQL's
    shared buffers or a forked worker's inherited pages more than once."""
    return sum(sizes["pss"] for sizes in pss_kib_by_part(parts).values()) * 1024


def rss_bytes_by_part(parts: dict[str, dict[int, ProcStat]]) -> dict[str, int]:
    return {name: sum(s.rss_pages for s in part.values()) * PAGE for name, part in parts.items()}


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy since boot (every process, ours or not)."""
    return machine_busy_ticks(Path("/proc/stat").read_text()) / TICKS
