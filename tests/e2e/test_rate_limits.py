"""Rate limits across API processes: a second API server (gunicorn, another port, the same
environment) beside the live stack's, and one client's burst spread over both. The count
is shared through Redis, so the two servers (four worker processes) together let through
about the client's limit per second, not four times it; another client is untouched."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, stop_process, wait_for_http
from core.tests.factories import metrics_auth
from tests.e2e.conftest import Stack, _start

pytestmark = pytest.mark.e2e

LIMIT = 5  # the bursting client's requests per second
BURST_SECONDS = 3.0
THREADS = 6
MAX_REQUESTS_PER_THREAD = 300  # with the deadline above: the burst is bounded either way
QUIET_EVERY_SECONDS = 0.2  # the other client: 5 requests/s, well under its default 100


@pytest.fixture
def second_api(stack: Stack) -> Iterator[str]:
    """Another gunicorn with the stack's environment (database, Redis and key prefix,
    metrics directory) on a port of its own."""
    port = free_port()
    args = list(stack.commands["api"])
    args[args.index("--bind") + 1] = f"127.0.0.1:{port}"
    proc = _start("api-second", args, stack.env, stack.log_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/healthz", proc=proc)
        yield url
    finally:
        stop_process(proc)


def new_client(django_db_blocker: Any, **limits: int) -> tuple[str, str]:
    from core.tests.factories import ApiClientFactory, api_key_for

    with django_db_blocker.unblock():
        client = ApiClientFactory(name=f"e2e-rl-{uuid.uuid4().hex[:8]}", **limits)
        return client.name, api_key_for(client)


def rate_limited_total(url: str, client: str) -> float:
    text = httpx.get(f"{url}/metrics", auth=metrics_auth(), timeout=10.0).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "cot_rate_limited_total"
        and sample.labels == {"client": client, "limit": "requests"}
    )


@dataclass
class Answer:
    server: str
    sent: float  # time.time() when the request left and when its answer came: the server
    answered: float  # counted it in the clock's second it saw, somewhere in between
    response: httpx.Response


def test_a_burst_over_two_api_servers_gets_the_limit_in_total_and_spares_other_clients(
    stack, second_api, django_db_blocker
):
    servers = [stack.api_url, second_api]
    burster, burst_key = new_client(django_db_blocker, requests_per_second=LIMIT)
    _, quiet_key = new_client(django_db_blocker)  # the product defaults
    # Clients made up front: building one (its TLS context) costs CPU the burst should get.
    burst_clients = [
        [
            httpx.Client(base_url=url, headers={"Authorization": f"Api-Key {burst_key}"})
            for url in servers
        ]
        for _ in range(THREADS)
    ]
    quiet_clients = [
        httpx.Client(base_url=url, headers={"Authorization": f"Api-Key {quiet_key}"})
        for url in servers
    ]
    for client in quiet_clients:  # warm: each server's first request opens its database pool
        assert client.get("/api/v1/orders/").status_code == 200
    answers: list[Answer] = []
    quiet_statuses: list[int] = []
    go = threading.Barrier(THREADS + 1)
    deadline = 0.0

    def get(client: httpx.Client, server: str) -> Answer:
        sent = time.time()
        response = client.get("/api/v1/orders/", timeout=10.0)
        return Answer(server, sent, time.time(), response)

    def burst(n: int) -> None:
        go.wait()
        for i in range(MAX_REQUESTS_PER_THREAD):
            if time.time() >= deadline:
                return
            server = (n + i) % 2  # each thread alternates between the two servers
            answers.append(get(burst_clients[n][server], servers[server]))

    def quiet() -> None:
        go.wait()
        i = 0
        while time.time() < deadline:
            quiet_statuses.append(get(quiet_clients[i % 2], servers[i % 2]).response.status_code)
            i += 1
            time.sleep(QUIET_EVERY_SECONDS)

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(THREADS)]
    threads.append(threading.Thread(target=quiet))
    deadline = time.time() + BURST_SECONDS
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=BURST_SECONDS + 30)
    assert not any(thread.is_alive() for thread in threads)
    for client in [*quiet_clients, *(c for pair in burst_clients for c in pair)]:
        client.close()

    statuses = Counter(a.response.status_code for a in answers)
    assert set(statuses) <= {200, 429}, statuses
    passed, refused = statuses[200], statuses[429]
    # Upper bound: every request was counted in a second of the clock between the first
    # sending and the last answer; each such second lets LIMIT through across both servers
    # (counted per process, four worker processes would let through up to four times that).
    first, last = min(a.sent for a in answers), max(a.answered for a in answers)
    seconds = int(last) - int(first) + 1
    # Lower bound: a request sent and answered within one second was counted in it; a second
    # offered n such requests let through at least min(LIMIT, n), however loaded the machine.
    within = Counter(int(a.sent) for a in answers if int(a.sent) == int(a.answered))
    floor = sum(min(LIMIT, n) for n in within.values())
    print(
        f"FIGURES rate_limit={LIMIT}/s servers=2 workers=4 sent={len(answers)} "
        f"passed={passed} refused={refused} seconds={seconds} lower_bound={floor} "
        f"elapsed={last - first:.2f}"
    )
    assert floor <= passed <= LIMIT * seconds, (passed, floor, seconds)
    assert refused > 0
    # Both servers took part, letting through and refusing alike.
    for server in servers:
        by_server = Counter(a.response.status_code for a in answers if a.server == server)
        assert by_server[200] > 0 and by_server[429] > 0, (server, by_server)
    for answer in answers:
        if answer.response.status_code == 429:
            assert answer.response.json()["errors"][0]["code"] == "rate_limited"
            assert int(answer.response.headers["Retry-After"]) >= 1

    assert quiet_statuses and set(quiet_statuses) == {200}, quiet_statuses
    # Every refusal is counted once, in whichever process refused it; /metrics adds them up.
    assert rate_limited_total(second_api, burster) == refused
