"""Hosts made of Linux network namespaces, and the data services of the cluster tests.

The root namespace is the *data host*: a bridge carries the cluster's private /24, the
data host holds its first address and runs PostgreSQL, Redis and the simulator bound to
it (and to nothing else). Every other host is a network namespace with one veth into the
bridge; its processes are started with `ip netns exec`. Taking the root-side end of a
host's veth down is pulling its cable: packets to and from it vanish, its TCP
connections hang rather than close. Nothing here changes routes, forwarding or firewalls
of the machine; everything made is removed by `teardown`, even after a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path

from conftest import free_port

# 10.213.<n>.0/24: private, and unlikely to meet a real network; <n> is the first one
# whose bridge name is free (the bridge's creation is the lock between concurrent runs).
SUBNET_PREFIX = "10.213"
BRIDGE_PREFIX = "cotc"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def namespaces_unavailable() -> str | None:
    """Why this machine cannot make network namespaces (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and veth pairs)"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`)"
    probe = f"{BRIDGE_PREFIX}-probe-{os.getpid()}"
    made = run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    run("ip", "netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    # The veth end in the root namespace, on the bridge: the host's "switch port".
    port: str

    def command(self, args: Sequence[str]) -> list[str]:
        """`args` run inside this host (`ip netns exec` execs them: the pid is theirs)."""
        return ["ip", "netns", "exec", self.namespace, *args]

    def pids(self) -> list[int]:
        """Every process running in this host."""
        listed = run("ip", "netns", "pids", self.namespace, check=False).stdout
        return [int(pid) for pid in listed.split()]

    def kill_all(self) -> list[int]:
        """SIGKILL to every process of the host at once, as a lost machine."""
        victims = self.pids()
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return victims

    def link_down(self) -> None:
        run("ip", "link", "set", self.port, "down")

    def link_up(self) -> None:
        run("ip", "link", "set", self.port, "up")


@dataclass
class Network:
    """A bridge in the root namespace (the data host) and hosts attached to it."""

    bridge: str
    subnet: str  # "10.213.57"
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def data_address(self) -> str:
        return f"{self.subnet}.1"

    @classmethod
    def create(cls) -> Network:
        for third in range(57, 57 + 190):
            bridge = f"{BRIDGE_PREFIX}{third}"
            subnet = f"{SUBNET_PREFIX}.{third}"
            if subnet + "." in run("ip", "-o", "addr").stdout:
                continue
            if run("ip", "link", "add", bridge, "type", "bridge", check=False).returncode:
                continue  # another run holds this one
            network = cls(bridge=bridge, subnet=subnet)
            try:
                run("ip", "addr", "add", f"{network.data_address}/24", "dev", bridge)
                run("ip", "link", "set", bridge, "up")
            except BaseException:
                network.teardown()
                raise
            return network
        raise RuntimeError(f"no free {SUBNET_PREFIX}.x.0/24 for the cluster tests")

    def add_host(self, name: str, number: int) -> Host:
        host = Host(
            name=name,
            namespace=f"{self.bridge}-{name}",
            address=f"{self.subnet}.{number}",
            port=f"{self.bridge}-{name}",
        )
        self.hosts[name] = host
        peer = f"{self.bridge}p{name}"
        run("ip", "netns", "add", host.namespace)
        run("ip", "link", "add", host.port, "type", "veth", "peer", "name", peer)
        run("ip", "link", "set", peer, "netns", host.namespace)
        inside = ["ip", "-n", host.namespace]
        run(*inside, "link", "set", peer, "name", "eth0")
        run(*inside, "addr", "add", f"{host.address}/24", "dev", "eth0")
        run(*inside, "link", "set", "eth0", "up")
        run(*inside, "link", "set", "lo", "up")
        run("ip", "link", "set", host.port, "master", self.bridge)
        run("ip", "link", "set", host.port, "up")
        return host

    def teardown(self) -> None:
        """Kill whatever still runs in the hosts, delete them (their veths go with their
        namespaces) and the bridge. Never raises: it runs after failures."""
        for host in self.hosts.values():
            host.kill_all()
        for host in self.hosts.values():
            run("ip", "netns", "del", host.namespace, check=False)
            run("ip", "link", "del", host.port, check=False)
        run("ip", "link", "del", self.bridge, check=False)


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian's layout)."""
    found = sorted(glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class Postgres:
    """A PostgreSQL instance of the test's own: initdb into a temporary directory, run as
    the `postgres` user (we are root), listening only on `host`. The machine's shared
    PostgreSQL is never touched, so this one can be stopped and started at will."""

    def __init__(self, host: str, bin_dir: Path) -> None:
        self.host = host
        self.port = free_port(host)
        self.bin = bin_dir
        self.directory = Path(tempfile.mkdtemp(prefix="cot-cluster-pg-"))
        shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{database}"

    def _as_postgres(self, *args: str) -> None:
        result = run("runuser", "-u", "postgres", "--", *args, check=False)
        if result.returncode:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stderr}{result.stdout}\n{log}")

    def init(self) -> None:
        self._as_postgres(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        subnet = self.host.rsplit(".", 1)[0]
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {subnet}.0/24 trust\n")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '{self.host}'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.directory}'\n"
                "max_connections = 200\n"
                # A throwaway database: durability buys nothing here, and the migrations
                # run faster without it on a busy machine.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )

    def start(self) -> None:
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start"
        )

    def stop(self) -> None:
        # fast: every session is disconnected at once, as a restart of the server does.
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
        )

    def create_database(self, name: str) -> None:
        self._as_postgres(
            str(self.bin / "createdb"),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            "postgres",
            name,
        )

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            run(
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "-w",
                "stop",
                check=False,
            )
        shutil.rmtree(self.directory, ignore_errors=True)
