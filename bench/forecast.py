"""`make bench FORECAST=1`: the forecasting run at scale.

In a fresh database: `seed_demo --history-days DAYS --history-skus SKUS --history-centers
CENTERS` writes a year of generated order history (SKUS x CENTERS series), then
`forecast_demand` builds the demand table, forecasts every series, backtests it and plans
replenishment. Each step is a `manage.py` subprocess (the benchmark imports no app code);
reported per step: wall time, the process's CPU time and peak resident memory (from
wait4), and the database's size after it. Writes bench/results/forecast.json.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "forecast.json"


def _database_size(pg_url: str, database: str) -> int:
    with psycopg.connect(f"{pg_url}/{database}", autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def _step(name: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    print(f"  {name}: manage.py {' '.join(args)}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if process.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({process.returncode})")
    result = {
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "output": output.strip().splitlines()[-1:] if output.strip() else [],
    }
    print(
        f"    {result['wall_s']} s wall, {result['cpu_s']} s CPU, "
        f"peak {result['peak_rss_mib']} MiB; {' '.join(result['output'])}",
        flush=True,
    )
    return result


def run(*, pg_url: str, database: str, skus: int, centers: int, days: int) -> dict[str, Any]:
    print(
        f"Forecasting benchmark: {skus} SKUs x {centers} centres x {days} days "
        f"(database {database})",
        flush=True,
    )
    with psycopg.connect(f"{pg_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cot_project.settings",
        "DATABASE_URL": f"{pg_url}/{database}",
        "COT_LOG_FORMAT": "json",
        "COT_FORECAST_HISTORY_DAYS": str(days),
    }
    steps = {"migrate": _step("migrate", ["migrate", "--noinput", "-v0"], env)}
    steps["history"] = _step(
        "history",
        [
            "seed_demo",
            "--history-days",
            str(days),
            "--history-skus",
            str(skus),
            "--history-centers",
            str(centers),
        ],
        env,
    )
    steps["history"]["database_mib"] = round(_database_size(pg_url, database) / 2**20, 1)
    steps["forecast"] = _step("forecast", ["forecast_demand", "--no-progress"], env)
    steps["forecast"]["database_mib"] = round(_database_size(pg_url, database) / 2**20, 1)
    # Every SKU x centre with history or stock: the generated ones and the demo catalog's.
    reported = re.search(r"(\d+) series", " ".join(steps["forecast"]["output"]))
    series = int(reported.group(1)) if reported else skus * centers
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "skus": skus,
        "centers": centers,
        "days": days,
        "series": series,
        "steps": steps,
        "forecast_ms_per_series": round(1000 * steps["forecast"]["wall_s"] / series, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"forecast_demand: {steps['forecast']['wall_s']} s for {series} series "
        f"({results['forecast_ms_per_series']} ms each), peak "
        f"{steps['forecast']['peak_rss_mib']} MiB; written to {RESULTS.relative_to(ROOT)}",
        flush=True,
    )
    return results
