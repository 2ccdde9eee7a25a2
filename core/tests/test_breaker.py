"""The Redis-shared circuit breaker's state machine, against the real Redis (the test
database), and through the HTTP client against the real simulator. Time is the breaker's
`clock`, moved by hand: no test waits for a reset period or a probe token's life."""

from __future__ import annotations

import multiprocessing
from unittest import mock

import pytest

from conftest import free_port
from core import breaker
from core.breaker import (
    BreakerOpen,
    BreakerState,
    breaker_enter,
    breaker_exit,
    breaker_status,
)
from core.http import CircuitOpen, ExternalError, ExternalRejected, ExternalUnavailable, post_json

T = "gateways/alpha"


RESET_SECONDS = 30


class Clock:
    """The breaker's clock in these tests: it moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def clock(settings, monkeypatch):
    settings.COT_BREAKER_FAILURE_THRESHOLD = 3
    settings.COT_BREAKER_RESET_SECONDS = RESET_SECONDS
    clock = Clock()
    monkeypatch.setattr(breaker, "clock", clock)
    return clock


def fail(times=1, target=T):
    for _ in range(times):
        breaker_exit(breaker_enter(target), failed=True)


def succeed(target=T):
    breaker_exit(breaker_enter(target), failed=False)


def open_and_wait(clock, target=T):
    fail(3, target)
    assert breaker_status(target).state == BreakerState.OPEN
    clock.advance(RESET_SECONDS)  # the reset time is over: the next call is the probe


def test_opens_after_the_threshold_of_consecutive_failures_and_refuses_fast():
    fail(2)
    assert breaker_status(T).state == BreakerState.CLOSED
    succeed()  # breaks the streak
    fail(2)
    assert breaker_status(T).state == BreakerState.CLOSED
    fail(1)
    assert breaker_status(T).state == BreakerState.OPEN
    with pytest.raises(BreakerOpen):
        breaker_enter(T)
    assert breaker_status("gateways/beta").state == BreakerState.CLOSED  # per target


def test_a_success_that_started_before_the_streak_does_not_reset_it():
    slow = breaker_enter(T)  # e.g. a call that reached the target before it died
    fail(2)
    breaker_exit(slow, failed=False)
    assert breaker_status(T).failures == 2
    fail(1)
    assert breaker_status(T).state == BreakerState.OPEN


def test_a_success_that_started_during_the_streak_resets_it():
    fail(2)
    started_after = breaker_enter(T)
    breaker_exit(started_after, failed=False)
    assert breaker_status(T).failures == 0


def test_a_late_success_does_not_close_an_open_breaker():
    slow = breaker_enter(T)
    fail(3)
    breaker_exit(slow, failed=False)
    assert breaker_status(T).state == BreakerState.OPEN


def test_concurrent_calls_are_not_serialised():
    tickets = [breaker_enter(T) for _ in range(10)]  # all in flight at once
    for ticket in tickets:
        breaker_exit(ticket, failed=False)
    assert breaker_status(T).state == BreakerState.CLOSED


def test_the_open_period_lasts_the_reset_time_to_the_millisecond(clock):
    fail(3)
    assert breaker_status(T).retry_in_ms == RESET_SECONDS * 1000
    clock.advance(RESET_SECONDS - 0.001)
    assert breaker_status(T).retry_in_ms == 1
    with pytest.raises(BreakerOpen) as refused:
        breaker_enter(T)
    assert refused.value.state == BreakerState.OPEN
    clock.advance(0.001)
    assert breaker_enter(T).probe_token


def test_after_the_reset_time_one_probe_goes_and_its_success_closes(clock):
    open_and_wait(clock)
    probe = breaker_enter(T)
    assert probe.probe_token
    assert breaker_status(T).state == BreakerState.HALF_OPEN
    with pytest.raises(BreakerOpen) as refused:
        breaker_enter(T)
    assert refused.value.state == BreakerState.HALF_OPEN
    breaker_exit(probe, failed=False)
    status = breaker_status(T)
    assert (status.state, status.failures) == (BreakerState.CLOSED, 0)
    succeed()


def test_a_failed_probe_opens_it_again_for_another_reset_period(clock):
    open_and_wait(clock)
    probe = breaker_enter(T)
    clock.advance(2)
    breaker_exit(probe, failed=True)
    assert breaker_status(T).state == BreakerState.OPEN
    clock.advance(RESET_SECONDS - 1)  # counted from the probe's failure, not the opening
    with pytest.raises(BreakerOpen):
        breaker_enter(T)
    clock.advance(1)
    assert breaker_enter(T).probe_token


def test_a_probe_that_reports_nothing_gives_its_token_back(clock):
    open_and_wait(clock)
    probe = breaker_enter(T)
    breaker_exit(probe, failed=None)  # e.g. a bug before sending: says nothing of the target
    assert breaker_status(T).state == BreakerState.OPEN
    assert breaker_enter(T).probe_token


def test_a_probe_that_died_lets_another_probe_after_its_token_expires(settings, clock):
    settings.COT_HTTP_CONNECT_TIMEOUT, settings.COT_HTTP_READ_TIMEOUT = 2, 5
    open_and_wait(clock)
    died = breaker_enter(T)  # its process dies: it never reports back
    assert died.probe_token
    clock.advance(7.999)  # the token lives as long as the longest call, plus a second
    with pytest.raises(BreakerOpen) as refused:
        breaker_enter(T)
    assert refused.value.state == BreakerState.HALF_OPEN
    clock.advance(0.001)
    assert breaker_status(T).state == BreakerState.OPEN
    probe = breaker_enter(T)
    assert probe.probe_token
    breaker_exit(died, failed=None)  # the old token is gone: the new probe keeps its own
    assert breaker_status(T).state == BreakerState.HALF_OPEN
    breaker_exit(probe, failed=False)
    assert breaker_status(T).state == BreakerState.CLOSED


def _race_for_the_probe(barrier, results) -> None:
    barrier.wait()
    try:
        ticket = breaker_enter(T)
        results.put("probe" if ticket.probe_token else "allowed")
    except BreakerOpen:
        results.put("refused")


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_processes_get_exactly_one_probe(round_, clock):
    open_and_wait(clock)  # the forked processes share the clock's time
    ctx = multiprocessing.get_context("fork")
    processes = 8
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=_race_for_the_probe, args=(barrier, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=20)
    outcomes = sorted(results.get(timeout=5) for _ in range(processes))
    assert outcomes == ["probe"] + ["refused"] * (processes - 1)
    assert breaker_status(T).state == BreakerState.HALF_OPEN


def test_redis_unreachable_fails_open(settings, simulator):
    fail(3)
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    ticket = breaker_enter(T)
    assert not ticket.guarded
    breaker_exit(ticket, failed=True)  # nothing to record, nothing raised
    intent = {"amount": "10.00", "currency": "INR", "idempotency_key": "k"}
    assert post_json(T, f"{simulator.url}/gateways/alpha/intents", intent)["id"]


# -- through the HTTP client


INTENT = {"amount": "10.00", "currency": "INR", "idempotency_key": "k"}


def test_http_failures_open_the_breaker_and_then_calls_are_not_sent(simulator, clock):
    url = f"{simulator.url}/gateways/alpha/intents"
    simulator.control(T, down=True)
    for _ in range(3):
        with pytest.raises(ExternalUnavailable) as error:
            post_json(T, url, INTENT)
        assert not isinstance(error.value, CircuitOpen)
    simulator.control(T, down=False)
    with pytest.raises(CircuitOpen):
        post_json(T, url, {**INTENT, "idempotency_key": "not-sent"})
    assert not [i for i in simulator.ledger()["intents"] if i["idempotency_key"] == "not-sent"]
    clock.advance(RESET_SECONDS)
    assert post_json(T, url, INTENT)["id"]  # the probe
    assert breaker_status(T).state == BreakerState.CLOSED


def test_server_errors_and_timeouts_count_but_4xx_do_not(simulator, settings):
    url = f"{simulator.url}/gateways/alpha/intents"
    for _ in range(5):
        with pytest.raises(ExternalRejected):
            post_json(T, url, {"amount": "x"})
    assert breaker_status(T).failures == 0
    simulator.control(T, error_rate=1.0)
    with pytest.raises(ExternalError):
        post_json(T, url, INTENT)
    simulator.control(T, error_rate=0.0, latency_ms=500)
    settings.COT_HTTP_READ_TIMEOUT = 0.1
    with pytest.raises(ExternalError):
        post_json(T, url, INTENT)
    assert breaker_status(T).failures == 2


def test_the_state_gauge_follows_what_this_process_sees(clock):
    from prometheus_client import REGISTRY

    def gauge():
        return REGISTRY.get_sample_value("cot_circuit_breaker_state", {"target": T})

    succeed()
    assert gauge() == BreakerState.CLOSED
    fail(3)
    assert gauge() == BreakerState.OPEN
    clock.advance(RESET_SECONDS)
    probe = breaker_enter(T)
    assert gauge() == BreakerState.HALF_OPEN
    breaker_exit(probe, failed=False)
    assert gauge() == BreakerState.CLOSED


def test_a_success_that_began_with_no_streak_needs_no_round_trip_and_changes_nothing():
    quiet = breaker_enter(T)
    assert quiet.quiet
    fail(2)  # a streak that began during the call: its success must not reset it
    with mock.patch.object(breaker, "_connection", side_effect=AssertionError("sent")):
        breaker_exit(quiet, failed=False)
    assert breaker_status(T).failures == 2
    during = breaker_enter(T)
    assert not during.quiet  # began during the streak: its success is news, and is sent
    breaker_exit(during, failed=False)
    assert breaker_status(T).failures == 0


# -- on Redis' own clock, as in production


def test_without_a_clock_the_open_period_is_measured_with_redis_time(settings, monkeypatch):
    monkeypatch.setattr(breaker, "clock", None)
    fail(3)
    status = breaker_status(T)
    assert status.state == BreakerState.OPEN
    assert 0 <= RESET_SECONDS * 1000 - status.retry_in_ms < 5_000
    with pytest.raises(BreakerOpen):
        breaker_enter(T)
    settings.COT_BREAKER_RESET_SECONDS = 0  # the next opening is over as soon as it began
    fail(3, "gateways/beta")
    probe = breaker_enter("gateways/beta")
    assert probe.probe_token
    assert breaker_status("gateways/beta").state == BreakerState.HALF_OPEN
    with pytest.raises(BreakerOpen):
        breaker_enter("gateways/beta")
    breaker_exit(probe, failed=False)
    assert breaker_status("gateways/beta").state == BreakerState.CLOSED
