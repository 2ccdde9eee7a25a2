"""Starting and stopping the benchmark's stack as production runs it: its own
redis-server (AOF, noeviction), PostgreSQL, gunicorn, Celery workers, the simulator.

Everything Django-side happens in subprocesses (`manage.py`, gunicorn, celery): the
benchmark itself imports nothing from the project.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis

from bench import proc

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

# The worker layout, shared by the real pipeline and the `floor` canvas: the Procfile's
# roles, one process per queue group (docs/OPERATIONS.md, "Process roles"). Threads, as
# there, because the steps mostly wait (on PostgreSQL, Redis, the gateways) and a threads
# pool keeps its database connection pool across tasks; the counts are this machine's
# (2 cores): the database-bound steps in one pool, many outside calls in flight in another.
WORKERS = (
    {
        "name": "w-pipeline",
        "queues": "pipeline",
        "pool": "threads",
        "concurrency": 16,
        "db_pool": 16,
    },
    {
        "name": "w-payments",
        "queues": "payments,logistics",
        "pool": "threads",
        "concurrency": 100,
        "db_pool": 40,
    },
    {
        # Customer messages are outside calls too (SMS/e-mail providers).
        "name": "w-notifications",
        "queues": "notifications",
        "pool": "threads",
        "concurrency": 20,
        "db_pool": 10,
    },
    {
        "name": "w-maintenance",
        "queues": "maintenance",
        "pool": "threads",
        "concurrency": 2,
        "db_pool": 2,
    },
)
if os.environ.get("BENCH_WORKERS"):
    # Development: try another layout, e.g. '[{"name": "w-all", "queues": "...", ...}]'.
    WORKERS = tuple(json.loads(os.environ["BENCH_WORKERS"]))
API_WORKERS = int(os.environ.get("BENCH_API_WORKERS", "3"))  # the Procfile's default
RABBITMQ_URL = os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer in {timeout}s") from None
            time.sleep(0.1)


def stop(process: subprocess.Popen, timeout: float = 20.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _rabbitmqctl(*args: str, check: bool = True) -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([ctl, "-q", *args], check=check, capture_output=True, timeout=60)


@dataclass
class Stack:
    workdir: Path
    pg_url: str  # server URL without a database name, e.g. postgres://postgres@127.0.0.1:5432
    database: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    redis_url: str = ""
    # "redis" (its own redis-server) or "amqp" (a vhost of its own on the local RabbitMQ)
    broker: str = "redis"
    broker_url: str = ""
    api_url: str = ""
    simulator_url: str = ""
    api_key: str = ""
    # This run's stand-in for every server secret (DEBUG is off: DEV-ONLY ones are refused).
    run_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    # --- pieces ---------------------------------------------------------------------------
    def _start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("a")
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def stop(self, *names: str) -> None:
        # Last started, first stopped: workers before the Redis they ack to.
        for name in names or reversed(list(self.processes)):
            process = self.processes.pop(name, None)
            if process is not None:
                stop(process)

    def redis_start(self) -> None:
        port = free_port()
        data = self.workdir / "redis"
        data.mkdir(exist_ok=True)
        # As production runs it (docs/OPERATIONS.md, "Redis"): AOF every second, no eviction.
        self._start(
            "redis",
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(data),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ],
            dict(os.environ),
        )
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self.prometheus_reset()
        client = redis.Redis.from_url(self.redis_url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def broker_start(self) -> None:
        """The broker: the stack's Redis itself, or a fresh vhost on RabbitMQ."""
        if self.broker == "redis":
            self.broker_url = self.redis_url
            return
        vhost = f"cot-bench-{os.getpid()}"
        self.broker_url = f"{RABBITMQ_URL}/{vhost}"
        user = RABBITMQ_URL.split("://", 1)[1].split(":", 1)[0]
        _rabbitmqctl("delete_vhost", vhost, check=False)
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")

    def broker_stop(self) -> None:
        if self.broker == "amqp" and self.broker_url:
            _rabbitmqctl("delete_vhost", self.broker_url.rsplit("/", 1)[1], check=False)

    def redis_flush(self) -> None:
        """Everything queued or counted between scenarios goes: Redis, and the RabbitMQ
        vhost's queues (a new vhost)."""
        redis.Redis.from_url(self.redis_url).flushall()
        if self.broker == "amqp":
            self.broker_stop()
            self.broker_start()

    @property
    def database_url(self) -> str:
        return f"{self.pg_url}/{self.database}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "cot_project.settings",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "BROKER_URL": self.broker_url,
            "BENCH_REDIS_URL": self.redis_url,
            "BENCH_BROKER_URL": self.broker_url,
            "SIMULATOR_URL": self.simulator_url,
            "COT_LOG_FORMAT": "json",
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "prometheus"),
            "PYTHONUNBUFFERED": "1",
            # DEBUG is off, so the DEV-ONLY secrets are refused: this run's own (the
            # simulator, started with the same environment, signs with them too).
            "DJANGO_SECRET_KEY": self.run_secret,
            "PAYMENTS_WEBHOOK_SECRET": self.run_secret,
            "LOGISTICS_WEBHOOK_SECRET": self.run_secret,
            # Plain http on 127.0.0.1.
            "DJANGO_SECURE_SSL_REDIRECT": "false",
        }
        env.pop("COT_REDIS_KEY_PREFIX", None)
        env.update(extra)
        return env

    def database_create(self) -> None:
        """A fresh database for every run, so every run starts from the same tables."""
        with psycopg.connect(f"{self.pg_url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.manage("migrate", "--noinput", "-v0")

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [PY, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def simulator_start(self, latency: str) -> None:
        self.stop("simulator")
        port = free_port()
        self._start(
            "simulator",
            [PY, "-m", "simulator", "--port", str(port)],
            # Couriers off: the scenarios measure an order up to `confirmed`, and runs stay
            # comparable with those made before the couriers drove deliveries.
            {**os.environ, "SIM_LATENCY_MS": latency, "SIM_COURIER": "off"},
        )
        self.simulator_url = f"http://127.0.0.1:{port}"
        wait_http(f"{self.simulator_url}/__ledger__")

    def prometheus_reset(self) -> None:
        directory = self.workdir / "prometheus"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()

    def api_start(self, pipeline_mode: str) -> None:
        port = free_port()
        self._start(
            "api",
            [
                PY,
                "-m",
                "gunicorn",
                "-c",
                "cot_project/gunicorn_conf.py",
                "cot_project.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(API_WORKERS),
                "--graceful-timeout",
                "20",
                "--backlog",
                "2048",
            ],
            self.env(COT_PIPELINE_MODE=pipeline_mode),
        )
        self.api_url = f"http://127.0.0.1:{port}"
        wait_http(f"{self.api_url}/healthz")

    def workers_start(self, app: str, pipeline_mode: str = "celery") -> None:
        env = self.env(COT_PIPELINE_MODE=pipeline_mode)
        if app != "cot_project":
            # Celery turns its Django fixup on whenever this variable is set.
            del env["DJANGO_SETTINGS_MODULE"]
        for worker in WORKERS:
            self._start(
                worker["name"],
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    app,
                    "worker",
                    "-Q",
                    worker["queues"],
                    "--pool",
                    worker["pool"],
                    "--concurrency",
                    str(worker["concurrency"]),
                    "-n",
                    f"{worker['name']}@%h",
                    "--loglevel",
                    "INFO",
                    "--without-gossip",
                    "--without-mingle",
                ],
                {**env, "DB_POOL_MAX_SIZE": str(worker["db_pool"])},
            )
        self.workers_wait(app, env)

    def workers_wait(self, app: str, env: dict[str, str], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        names = {f"{w['name']}@{socket.gethostname()}" for w in WORKERS}
        while time.monotonic() < deadline:
            result = subprocess.run(
                [PY, "-m", "celery", "-A", app, "inspect", "ping", "--timeout", "1", "--json"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if all(name in result.stdout for name in names):
                return
            time.sleep(0.5)
        raise RuntimeError(f"workers did not answer; see {self.workdir}/w-*.log")

    def roots(self) -> dict[str, int]:
        """The processes whose CPU and memory count as the stack (not the simulator: it is
        the outside world)."""
        parts = {"api": "api", "redis": "redis"}
        parts.update({w["name"]: w["name"] for w in WORKERS})
        roots = {
            part: self.processes[name].pid for part, name in parts.items() if name in self.processes
        }
        if self.broker == "amqp":
            # RabbitMQ is the machine's service, not started here, but it is the stack's
            # broker: its Erlang VM counts, as PostgreSQL's backends do (in full, even if
            # another vhost were busy at the same time: an overestimate then).
            rabbitmq = proc.rabbitmq_pid()
            if rabbitmq:
                roots["rabbitmq"] = rabbitmq
        return roots
