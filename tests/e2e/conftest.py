"""The live stack for end-to-end tests: the API server (gunicorn), a real Celery worker
on the real Redis (or RabbitMQ with COT_TEST_BROKER=amqp: tests/brokers.py), and the
simulator, all as subprocesses sharing the test database. Tests speak HTTP to it, as a
client would."""

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
from celery import Celery

from conftest import ROOT, Simulator, free_port, stop_process, wait_for_http
from tests.brokers import celery_client, stack_broker
from tests.e2e.live_schema import LiveSchema

QUEUES = "pipeline,payments,logistics,notifications,maintenance"
TERMINAL = {
    "confirmed",
    "rejected",
    "payment_failed",
    "cancelled",
    "on_hold",
    "delivered",
    "awaiting_payment",
    "ready_for_pickup",
    "collected",
}


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
    # How to start each process again (the chaos tests stop and restart them).
    commands: dict[str, list[str]] = field(default_factory=dict)
    # Called once the processes are stopped (the broker's vhost is deleted, say).
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def client(self, name: str | None = "web", **options: Any) -> httpx.Client:
        """An HTTP client of the API as API client `name` (its key; None: no key, e.g. for
        webhooks or a staff login given in `options`). Every /api/v1/ answer it gets is
        checked against the published schema: one it does not describe fails the test."""
        headers = {"Authorization": f"Api-Key {self.keys[name]}"} if name else {}
        headers.update(options.pop("headers", {}))
        options.setdefault("timeout", 10.0)
        hooks = options.pop("event_hooks", {})
        hooks = {**hooks, "response": [*hooks.get("response", []), live_schema(self).check]}
        return httpx.Client(base_url=self.api_url, headers=headers, event_hooks=hooks, **options)

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

    def start(self, name: str, **env: str) -> subprocess.Popen:
        """(Re)start a process, with `env` over the stack's environment."""
        proc = _start(name, self.commands[name], {**self.env, **env}, self.log_dir)
        self.processes[name] = proc
        if name == "api":
            wait_for_http(f"{self.api_url}/healthz", proc=proc)
        return proc

    def restart(self, name: str, **env: str) -> subprocess.Popen:
        stop_process(self.processes[name])
        return self.start(name, **env)

    @property
    def broker_url(self) -> str:
        return self.env.get("TEST_BROKER_URL") or self.env["TEST_REDIS_URL"]

    def stop(self) -> None:
        for proc in self.processes.values():
            stop_process(proc)
        while self.cleanups:
            self.cleanups.pop()()
        for log in sorted(self.log_dir.glob("*.log")):
            print(f"--- {log.name} (last lines)\n" + "\n".join(log.read_text().splitlines()[-15:]))


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` every quarter second until it holds; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.25)


class RedisServer:
    """A redis-server of a test stack's own on a free port of `host`, without persistence
    (a restart loses every queue): the machine's shared Redis (other test runs use it) is
    never stopped."""

    def __init__(self, directory: Path, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port(host)
        self.directory = directory
        self.url = f"redis://{host}:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                self.host,
                # Off only where nothing but this machine's test namespaces can reach it.
                "--protected-mode",
                "yes" if self.host == "127.0.0.1" else "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


_live_schema: LiveSchema | None = None


def live_schema(stack: Stack) -> LiveSchema:
    """The schema the API serves, fetched and compiled once per session (every stack runs
    the same code)."""
    global _live_schema
    if _live_schema is None:
        _live_schema = LiveSchema.fetch(stack.api_url)
    return _live_schema


def _start(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> subprocess.Popen:
    # Appending: a restarted process keeps the log of the one before it.
    log = (log_dir / f"{name}.log").open("a")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="session")
def e2e_database(django_db_setup: Any, django_db_blocker: Any) -> str:
    """The test database with the demo catalog, as a URL for the live processes."""
    from django.core.management import call_command
    from django.db import connection

    with django_db_blocker.unblock():
        call_command(
            "load_catalog", str(ROOT / "inventory/fixtures/demo_catalog.json"), verbosity=0
        )
        return _database_url(connection.settings_dict)


def api_keys(django_db_blocker: Any, run: str) -> dict[str, str]:
    """A `web` and a `mobile` API client of their own for one stack, with rate limits
    above the tests' bursts (fifty simultaneous placements, say)."""
    from core.tests.factories import BURST_LIMITS, ApiClientFactory, api_key_for

    with django_db_blocker.unblock():
        return {
            name: api_key_for(
                ApiClientFactory(name=f"e2e-{name}-{run}", channel=channel, **BURST_LIMITS)
            )
            for name, channel in (("web", "web"), ("mobile", "mobile"))
        }


CELERY = [sys.executable, "-m", "celery", "-A", "cot_project"]


def stack_environment(
    *,
    database_url: str,
    redis_url: str,
    simulator_url: str,
    run: str,
    metrics_dir: Path,
    env: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every process of a live stack (API server, workers, beat), with
    `env` over it. `metrics_dir` is shared by the processes of one machine, as in
    production."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cot_project.settings_test",
        "DATABASE_URL": database_url,
        "TEST_REDIS_URL": redis_url,
        "SIMULATOR_URL": simulator_url,
        "COT_PIPELINE_MODE": "celery",
        # Queues of their own: another test run on this Redis never takes these tasks.
        "COT_REDIS_KEY_PREFIX": f"e2e-{run}:",
        "PYTHONUNBUFFERED": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "COT_LOG_FORMAT": "json",
        # Short windows, so breaker probes and the bounded payment wait happen in seconds.
        "COT_BREAKER_RESET_SECONDS": "5",
        "COT_PAYMENT_MAX_WAIT_SECONDS": "6",
        # The tests' webhook receivers listen on 127.0.0.1 over plain http.
        "COT_ALLOW_PRIVATE_WEBHOOKS": "true",
        **(env or {}),
    }


def stack_start(
    *,
    database_url: str,
    redis_url: str,
    simulator: Simulator,
    keys: dict[str, str],
    tmp_path_factory: Any,
    run: str,
    concurrency: int = 4,
    beat: bool = False,
    env: dict[str, str] | None = None,
    broker: str | None = None,
) -> Stack:
    """Start the API server (gunicorn), a prefork Celery worker and, with `beat`, Celery
    beat (the sweeper), all on `redis_url` and the test database. The broker is `broker`
    (`redis` or `amqp`; default COT_TEST_BROKER, tests/brokers.py)."""
    api_port = free_port()
    broker_env, broker_cleanup = stack_broker(run, broker)
    log_dir = tmp_path_factory.mktemp("live-stack")
    stack_env = stack_environment(
        database_url=database_url,
        redis_url=redis_url,
        simulator_url=simulator.url,
        run=run,
        metrics_dir=tmp_path_factory.mktemp("prometheus"),
        env={**broker_env, **(env or {})},
    )
    celery = CELERY
    commands = {
        "api": [
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
        "worker": [
            *celery,
            "worker",
            "-Q",
            QUEUES,
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"e2e-{run}@%h",
        ],
    }
    if beat:
        commands["beat"] = [*celery, "beat", "--schedule", str(log_dir / "beat-schedule")]
    stack = Stack(
        api_url=f"http://127.0.0.1:{api_port}",
        simulator=simulator,
        env=stack_env,
        log_dir=log_dir,
        keys=keys,
        commands=commands,
        cleanups=[broker_cleanup],
    )
    try:
        for name in commands:
            stack.start(name)
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="session")
def live_stack(
    e2e_database: str,
    django_db_blocker: Any,
    simulator_process: Simulator,
    tmp_path_factory: Any,
) -> Iterator[Stack]:
    from django.conf import settings

    run = uuid.uuid4().hex[:8]
    keys = api_keys(django_db_blocker, run)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    stack = stack_start(
        database_url=e2e_database,
        redis_url=settings.REDIS_URL,
        simulator=simulator_process,
        keys=keys,
        tmp_path_factory=tmp_path_factory,
        run=run,
    )
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def broker(live_stack: Stack) -> Iterator[Celery]:
    """The live stack's broker (its key prefix or vhost), to hand a sweep's task to the
    worker as beat would."""
    app = celery_client(live_stack.env)
    yield app
    app.close()


@pytest.fixture
def stack(live_stack: Stack, settings: Any) -> Stack:
    """The shared live stack, with a reset simulator and closed breakers; this process
    reads and writes the stack's breakers (its Redis key prefix) while the test runs."""
    from core.breaker import key_prefix

    live_stack.simulator.reset()
    settings.COT_REDIS_KEY_PREFIX = live_stack.env["COT_REDIS_KEY_PREFIX"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    stale = list(client.scan_iter(f"{key_prefix()}*"))
    if stale:
        client.delete(*stale)
    client.close()
    return live_stack
