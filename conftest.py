"""Fixtures every test may use: the simulator as a real HTTP process, Redis, factories."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, *, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop_process(proc: subprocess.Popen, *, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Simulator:
    """A handle on the running simulator: its ledger and its run-time controls."""

    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        httpx.post(f"{self.url}/__reset__").raise_for_status()

    def control(self, target: str, **changes: Any) -> None:
        httpx.post(f"{self.url}/__control__", json={"target": target, **changes}).raise_for_status()

    def ledger(self) -> dict[str, list[dict[str, Any]]]:
        return httpx.get(f"{self.url}/__ledger__").json()

    def requests(self) -> dict[str, int]:
        """Requests that reached each target since the last reset, whatever the answer."""
        return httpx.get(f"{self.url}/__control__").json()["requests"]


@pytest.fixture(scope="session")
def simulator_process() -> Iterator[Simulator]:
    port = free_port()
    # Couriers off: tests drive tracking webhooks themselves, or switch a courier on.
    env = {**os.environ, "SIM_LATENCY_MS": "", "SIM_COURIER": "off"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", str(port)], cwd=ROOT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/healthz", proc=proc)
        yield Simulator(url)
    finally:
        stop_process(proc)


@pytest.fixture
def simulator(simulator_process: Simulator, settings: Any) -> Simulator:
    """The simulator, reset, with the app's outside-world URLs pointed at it."""
    url = simulator_process.url
    settings.SIMULATOR_URL = url
    settings.PAYMENTS_BASE_URL = f"{url}/gateways"
    settings.LOGISTICS_BASE_URL = f"{url}/logistics"
    settings.NOTIFY_BASE_URL = f"{url}/notify"
    simulator_process.reset()
    return simulator_process


@pytest.fixture(autouse=True)
def _celery_eager_in_process() -> Iterator[None]:
    """Tasks sent by code under test in this process run eagerly; the live worker of the
    end-to-end tests is another process and is not affected."""
    from cot_project.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> None:
    """Templates and webhook clients are cached per process for seconds: each test reads
    its own database's."""
    from notifications.caching import caches_clear

    caches_clear()


@pytest.fixture(autouse=True)
def _closed_circuit_breakers() -> Iterator[None]:
    """Breaker state lives in Redis and would outlive a test: each test starts closed."""
    import redis
    from django.conf import settings

    from core.breaker import key_prefix

    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(f"{key_prefix()}*"))
    if keys:
        client.delete(*keys)
    client.close()
    yield


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    """Rate-limit counters live in Redis for a few seconds, keyed by the client's id: a
    client of the next test may have the same id (SQLite reuses them), so each test starts
    with none counted."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    pattern = f"{settings.COT_REDIS_KEY_PREFIX}{settings.RATELIMIT_CACHE_PREFIX}*"
    keys = list(client.scan_iter(pattern))
    if keys:
        client.delete(*keys)
    client.close()
    yield


def pytest_configure(config: Any) -> None:
    # A fresh SQLite test database must not meet the WAL/SHM files of an earlier run: the
    # live processes would read a stale write-ahead log ("disk I/O error").
    if not config.getoption("reuse_db", default=False):
        for leftover in ROOT.glob("test_db.sqlite3*"):
            leftover.unlink()


def pytest_collection_modifyitems(config: Any, items: list[pytest.Item]) -> None:
    # End-to-end tests last: they share committed data with the live processes, which
    # a transactional test's flush would remove.
    items.sort(key=lambda item: "e2e" in item.keywords)


DEMO_CATALOG = ROOT / "inventory" / "fixtures" / "demo_catalog.json"


@pytest.fixture
def demo_catalog(db: Any) -> None:
    from django.core.management import call_command

    call_command("load_catalog", str(DEMO_CATALOG), verbosity=0)
