"""A COT deployment over several hosts, made inside the test run (docs/RELIABILITY.md,
"Beyond one machine").

    data host (root namespace, 10.213.n.1)   PostgreSQL, Redis, simulator: this module's own
      │ bridge cotc<n>
      ├── api (10.213.n.10)   gunicorn, Celery beat
      ├── w1  (10.213.n.11)   the Procfile's worker command(s)
      └── w2  (10.213.n.12)   the Procfile's worker command(s)

The module fixture `cluster` builds it once for every fault test and takes it down after,
whatever happened.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import environ
import pytest
from celery import Celery

from conftest import ROOT, Simulator, stop_process, wait_for_http
from tests.cluster.topology import Host, Network, Postgres, namespaces_unavailable, postgres_bin
from tests.e2e.conftest import CELERY, RedisServer, Stack, stack_environment, wait_until

API_PORT = 8000
SIMULATOR_PORT = 8099
# Charges and bookings take real time at the gateway and the courier, so faults land on
# orders whose charge is in flight (the benchmark's seed latencies).
SIM_LATENCY_MS = "intents=100,charges=500,refunds=300,shipments=400,notify=50"
# Products of the cluster tests' own, a few units each, so that concurrent orders compete
# for the last units while processes die: one per fault test.
SCARCE_UNITS = 8
SCARCE_SKUS = [f"CLUSTER-SCARCE-{n}" for n in range(1, 5)]
WORKER_HOSTS = ("w1", "w2")
DATABASE_ALIAS = "cluster"

# Short windows, so that recovery takes seconds; each is the product's own setting.
STACK_SETTINGS = {
    # The sweeper re-drives an order untouched this long; it runs every 2 s.
    "COT_STUCK_ORDER_SECONDS": "10",
    "COT_SWEEP_INTERVAL_SECONDS": "2",
    "COT_BREAKER_RESET_SECONDS": "2",
    # Orders wait out an outage instead of failing for want of a gateway answer.
    "COT_PAYMENT_MAX_WAIT_SECONDS": "180",
    # Re-drives under faults count as attempts; the cap itself is proven in test_chaos.
    "COT_STEP_MAX_ATTEMPTS": "200",
    # Messages a lost worker held come back after the visibility timeout (product default
    # 3600 s). 30 s here, with every time limit and countdown below it, as the product
    # requires: a task may run 20 s, a retry waits at most 20 s.
    "COT_VISIBILITY_TIMEOUT": "30",
    "COT_TASK_TIME_LIMIT": "20",
    "COT_MAX_COUNTDOWN_SECONDS": "20",
    "CELERY_CONCURRENCY": "8",
    # A lost host's open transaction holds its row locks until the database ends it.
    "DB_IDLE_IN_TRANSACTION_TIMEOUT": "10",
}


def procfile_workers() -> dict[str, str]:
    """The Procfile's worker processes (`worker`, `worker-...`): what every worker host
    runs, exactly as production starts it."""
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip().startswith("worker") and command.strip():
            entries[name.strip()] = command.strip()
    return entries


def worker_command(procfile_command: str, nodename: str) -> list[str]:
    """A Procfile line as its own host runs it: `${VAR:-default}` expanded by the shell,
    the virtualenv's programs taken from this interpreter's, and a node name of its own
    (every namespace shares this machine's host name, which Celery's default uses)."""
    command = procfile_command.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    return ["bash", "-c", f"exec {command} --hostname {shlex.quote(nodename)}"]


@dataclass
class Cluster:
    network: Network
    postgres: Postgres
    redis: RedisServer
    simulator: Simulator
    stack: Stack
    broker_url: str
    django_db_blocker: Any
    # Celery node names of each worker host's processes, and their names in the stack.
    nodes: dict[str, list[str]] = field(default_factory=dict)
    processes: dict[str, list[str]] = field(default_factory=dict)
    # on_hand of every stock batch after the catalog was loaded.
    initial_on_hand: dict[int, int] = field(default_factory=dict)
    control: Celery | None = None

    def host(self, name: str) -> Host:
        return self.network.hosts[name]

    def db(self, query: Any) -> Any:
        """Run `query()` (ORM reads `.using(DATABASE_ALIAS)`) against the cluster's
        database."""
        with self.django_db_blocker.unblock():
            return query()

    def restart_database(self, while_down: Any) -> None:
        """Stop PostgreSQL (every session cut, as a restart does), call `while_down()`,
        start it again; this process's own connection to it is renewed."""
        from django.db import connections

        self.postgres.stop()
        try:
            while_down()
        finally:
            self.postgres.start()
            connections[DATABASE_ALIAS].close()

    def database_sessions(self) -> list[tuple]:
        """The cluster database's sessions, for a failure's message: who holds or waits
        for what."""
        from django.db import connections

        def sessions() -> list[tuple]:
            with connections[DATABASE_ALIAS].cursor() as cursor:
                cursor.execute(
                    "SELECT client_addr, state, wait_event_type, wait_event,"
                    " now() - xact_start, left(query, 120) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                return cursor.fetchall()

        return self.db(sessions)

    def start_workers(self, host: str) -> None:
        for name in self.processes[host]:
            self.stack.start(name)
        self.wait_ready(host)

    def wait_ready(self, host: str, timeout: float = 60) -> None:
        """Until every worker of `host` answers a ping over the broker."""
        wait_until(
            lambda: set(self.nodes[host]) <= self.answering(self.nodes[host]),
            timeout=timeout,
            what=f"the workers of {host} answer over the broker",
        )

    def answering(self, nodes: list[str]) -> set[str]:
        replies = self.control.control.ping(destination=nodes, timeout=1.0) or []
        return {name for reply in replies for name in reply}

    def order_tasks_running(self, host: str) -> int:
        """Tasks of some order (not the periodic sweeps) the workers of `host` run now;
        0 when they do not answer."""
        active = self.control.control.inspect(destination=self.nodes[host], timeout=1.0).active()
        return sum(1 for tasks in (active or {}).values() for task in tasks if task["args"])

    def worker_processes(self, host: str) -> list[subprocess.Popen]:
        return [self.stack.processes[name] for name in self.processes[host]]

    def lose_host(self, host: str) -> list[int]:
        """Every process of the host killed at once (SIGKILL), then its link down."""
        victims = self.host(host).kill_all()
        self.host(host).link_down()
        for proc in self.worker_processes(host):
            proc.wait()
        return victims

    def heal(self) -> None:
        """Every host linked and every worker running, as the next test expects."""
        for name, host in self.network.hosts.items():
            host.link_up()
            if name in self.processes and any(
                proc.poll() is not None for proc in self.worker_processes(name)
            ):
                for proc in self.worker_processes(name):
                    stop_process(proc)
                self.start_workers(name)


def manage(env: dict[str, str], *args: str) -> str:
    """A management command on the data host, in the stack's environment `env`."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)}: {result.stderr[-3000:]}")
    return result.stdout


def scarce_catalog(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "products": [
                    {"sku": sku, "name": f"Cluster test product {sku}", "price": "40.00"}
                    | {"schedule": "otc", "active": True}
                    for sku in SCARCE_SKUS
                ],
                "centers": [],
                "stock": [
                    {"center": "BLR-1", "sku": sku, "batch": f"{sku}-B1"}
                    | {"expires_on": "2030-12-31", "quantity": SCARCE_UNITS}
                    for sku in SCARCE_SKUS
                ],
            }
        )
    )
    return path


@contextmanager
def database_alias(alias: str, url: str) -> Iterator[None]:
    """The cluster's database as a second connection of this test process, so that the
    checks read it with the same models the code writes it with. Django reads DATABASES
    once; a connection added later goes into its connection handler's settings."""
    from django.db import connections

    config = environ.Env.db_url_config(url)
    config["OPTIONS"] = {"connect_timeout": 3}
    connections.settings = connections.configure_settings({**connections.settings, alias: config})
    try:
        yield
    finally:
        if alias in connections:
            connections[alias].close()
            del connections[alias]
        connections.settings.pop(alias, None)


@pytest.fixture(scope="module")
def cluster(django_db_blocker: Any, tmp_path_factory: Any) -> Iterator[Cluster]:
    reason = namespaces_unavailable()
    if reason is not None:
        pytest.skip(f"multi-host fault tests skipped: {reason}")
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("multi-host fault tests skipped: no PostgreSQL server (/usr/lib/postgresql)")

    run = f"cluster-{uuid.uuid4().hex[:6]}"
    log_dir = tmp_path_factory.mktemp("cluster-logs")
    network = Network.create()
    postgres = redis_server = sim_proc = stack = control = None
    try:
        for number, name in ((10, "api"), (11, "w1"), (12, "w2")):
            network.add_host(name, number)
        data = network.data_address

        postgres = Postgres(data, bin_dir)
        postgres.init()
        postgres.start()
        postgres.create_database("cot")
        database_url = postgres.url("cot")
        redis_server = RedisServer(tmp_path_factory.mktemp("cluster-redis"), host=data)
        redis_server.start()
        # Today the broker is this Redis; it is one parameter of the stack.
        broker_url = redis_server.url

        simulator = Simulator(f"http://{data}:{SIMULATOR_PORT}")
        env = stack_environment(
            database_url=database_url,
            redis_url=redis_server.url,
            simulator_url=simulator.url,
            run=run,
            metrics_dir=tmp_path_factory.mktemp("cluster-metrics"),
            env={
                **STACK_SETTINGS,
                "TEST_BROKER_URL": broker_url,
                "DJANGO_ALLOWED_HOSTS": network.hosts["api"].address,
            },
        )
        sim_proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--host", data, "--port", str(SIMULATOR_PORT)],
            cwd=ROOT,
            env={**env, "SIM_LATENCY_MS": SIM_LATENCY_MS, "SIM_COURIER": "off"},
            stdout=(log_dir / "simulator.log").open("a"),
            stderr=subprocess.STDOUT,
        )
        wait_for_http(f"{simulator.url}/healthz", proc=sim_proc)

        manage(env, "migrate", "--no-input", "-v0")
        manage(env, "load_catalog", str(ROOT / "inventory/fixtures/demo_catalog.json"))
        manage(env, "load_catalog", str(scarce_catalog(log_dir / "scarce.json")))
        key = manage(env, "create_api_client", f"{run}-web", "--channel", "web")
        keys = {"web": key.splitlines()[0].strip()}

        api = network.hosts["api"]
        commands = {
            "api": api.command(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "cot_project/gunicorn_conf.py",
                    "cot_project.wsgi",
                    "--bind",
                    f"{api.address}:{API_PORT}",
                    "--workers",
                    "2",
                ]
            ),
            "beat": api.command([*CELERY, "beat", "--schedule", str(log_dir / "beat-schedule")]),
        }
        nodes: dict[str, list[str]] = {}
        processes: dict[str, list[str]] = {}
        for host_name in WORKER_HOSTS:
            host = network.hosts[host_name]
            for role, command in procfile_workers().items():
                nodename = f"{role}@{run}-{host_name}"
                commands[f"{host_name}:{role}"] = host.command(worker_command(command, nodename))
                nodes.setdefault(host_name, []).append(nodename)
                processes.setdefault(host_name, []).append(f"{host_name}:{role}")
        stack = Stack(
            api_url=f"http://{api.address}:{API_PORT}",
            simulator=simulator,
            env=env,
            log_dir=log_dir,
            keys=keys,
            commands=commands,
        )
        prefix = {"global_keyprefix": env["COT_REDIS_KEY_PREFIX"]}
        control = Celery(f"{run}-control", broker=broker_url, set_as_current=False)
        control.conf.update(broker_transport_options=prefix)
        cluster = Cluster(
            network=network,
            postgres=postgres,
            redis=redis_server,
            simulator=simulator,
            stack=stack,
            broker_url=broker_url,
            django_db_blocker=django_db_blocker,
            nodes=nodes,
            processes=processes,
            control=control,
        )
        for name in ("api", "beat"):
            stack.start(name)
        for host_name in WORKER_HOSTS:
            cluster.start_workers(host_name)

        with database_alias(DATABASE_ALIAS, database_url):
            from inventory.models import StockBatch

            cluster.initial_on_hand = cluster.db(
                lambda: dict(StockBatch.objects.using(DATABASE_ALIAS).values_list("id", "on_hand"))
            )
            yield cluster
    finally:
        if stack is not None:
            stack.stop()
        if control is not None:
            control.close()
        network.teardown()
        if sim_proc is not None:
            stop_process(sim_proc)
        if redis_server is not None:
            redis_server.stop()
        if postgres is not None:
            postgres.destroy()


@pytest.fixture
def healthy(cluster: Cluster) -> Cluster:
    """The cluster with every host linked and running, whatever the previous test did."""
    cluster.heal()
    return cluster
