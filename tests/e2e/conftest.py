"""The live stack for end-to-end tests: the API server (gunicorn), a real Celery worker
on the real Redis, and the simulator, all as subprocesses sharing the test database.
Tests speak HTTP to it, as a client would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from conftest import ROOT, Simulator, free_port, stop_process, wait_for_http

QUEUES = "pipeline,payments,logistics,notifications,maintenance"
TERMINAL = {"confirmed", "rejected", "payment_failed", "cancelled", "on_hold", "delivered"}


def _database_url(settings_dict: dict[str, Any]) -> str:
    if "sqlite" in settings_dict["ENGINE"]:
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    user, password = settings_dict["USER"] or "", settings_dict["PASSWORD"] or ""
    host, port = settings_dict["HOST"] or "127.0.0.1", settings_dict["PORT"] or 5432
    return f"postgres://{user}:{password}@{host}:{port}/{settings_dict['NAME']}"


@dataclass
class Stack:
    api_url: str
    simulator: Simulator
    env: dict[str, str]
    # Each process's output (JSON log lines) is in <log_dir>/<name>.log.
    log_dir: Path
    keys: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def client(self, name: str = "web") -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Api-Key {self.keys[name]}"},
            timeout=10.0,
        )

    def wait_for(
        self,
        client: httpx.Client,
        order_id: str,
        until: Callable[[dict[str, Any]], bool] = lambda o: o["status"] in TERMINAL,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            order = client.get(f"/api/v1/orders/{order_id}/").json()
            if until(order):
                return order
            if time.monotonic() > deadline:
                raise AssertionError(f"order still {order['status']} after {timeout}s: {order}")
            time.sleep(0.2)


def _start(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> subprocess.Popen:
    log = (log_dir / f"{name}.log").open("w")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="session")
def live_stack(
    django_db_setup: Any,
    django_db_blocker: Any,
    simulator_process: Simulator,
    tmp_path_factory: Any,
) -> Iterator[Stack]:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from core.tests.factories import ApiClientFactory, api_key_for

    run = uuid.uuid4().hex[:8]
    with django_db_blocker.unblock():
        call_command(
            "load_catalog", str(ROOT / "inventory/fixtures/demo_catalog.json"), verbosity=0
        )
        keys = {
            name: api_key_for(ApiClientFactory(name=f"e2e-{name}-{run}", channel=channel))
            for name, channel in (("web", "web"), ("mobile", "mobile"))
        }
        database_url = _database_url(connection.settings_dict)

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    api_port = free_port()
    log_dir = tmp_path_factory.mktemp("live-stack")
    # Shared by gunicorn's workers and the Celery worker's children, as in production.
    metrics_dir = tmp_path_factory.mktemp("prometheus")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cot_project.settings_test",
        "DATABASE_URL": database_url,
        "TEST_REDIS_URL": settings.REDIS_URL,
        "SIMULATOR_URL": simulator_process.url,
        "COT_PIPELINE_MODE": "celery",
        # Queues of their own: another test run on this Redis never takes these tasks.
        "COT_REDIS_KEY_PREFIX": f"e2e-{run}:",
        "PYTHONUNBUFFERED": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "COT_LOG_FORMAT": "json",
        # Short windows, so breaker probes and the bounded payment wait happen in seconds.
        "COT_BREAKER_RESET_SECONDS": "5",
        "COT_PAYMENT_MAX_WAIT_SECONDS": "6",
    }
    processes = {
        "api": _start(
            "api",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "cot_project/gunicorn_conf.py",
                "cot_project.wsgi",
                "--bind",
                f"127.0.0.1:{api_port}",
                "--workers",
                "2",
            ],
            env,
            log_dir,
        ),
        "worker": _start(
            "worker",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "cot_project",
                "worker",
                "-Q",
                QUEUES,
                "--pool",
                "prefork",
                "--concurrency",
                "4",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"e2e-{run}@%h",
            ],
            env,
            log_dir,
        ),
    }
    stack = Stack(
        api_url=f"http://127.0.0.1:{api_port}",
        simulator=simulator_process,
        env=env,
        log_dir=log_dir,
        keys=keys,
        processes=processes,
    )
    try:
        wait_for_http(f"{stack.api_url}/healthz", proc=processes["api"])
        yield stack
    finally:
        for proc in processes.values():
            stop_process(proc)
        for log in sorted(log_dir.glob("*.log")):
            print(f"--- {log.name} (last lines)\n" + "\n".join(log.read_text().splitlines()[-15:]))


@pytest.fixture
def stack(live_stack: Stack) -> Stack:
    live_stack.simulator.reset()
    return live_stack
