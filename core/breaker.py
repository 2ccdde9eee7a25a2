"""Circuit breakers per outside target, their state shared by every process through Redis.

Why not pybreaker: it holds a lock for the whole wrapped call (a threads or gevent pool
would make one call at a time per target) and any success resets its shared failure count.
This breaker is three small Lua scripts, each one atomic in Redis; nothing is held while
the call runs, so concurrent calls never wait for each other.

States (the values of `cot_circuit_breaker_state`):

- closed (0): calls go through. `COT_BREAKER_FAILURE_THRESHOLD` consecutive failures
  (connection errors, timeouts, 5xx; never a 4xx or a decline) open it.
- open (2): calls fail fast with `ExternalUnavailable` (nothing was sent, so callers may
  fail over). After `COT_BREAKER_RESET_SECONDS` the next call takes the one probe token
  (inside the atomic script, so exactly one process across the whole deployment gets it).
- half-open (1): the probe is in flight; every other call still fails fast. The probe's
  success closes the breaker, its failure opens it for another reset period. A probe
  whose process dies leaves its token behind; it lapses after the longest a call can
  take, and the next call probes.

"Consecutive" across processes: calls overlap, so completion order alone says little.
A success resets the failure streak only if the call *started after the streak's first
failure was recorded*: it is news that the target worked after it began failing. A slow
success that started before the streak (a call that reached the target before it died)
is stale and does not reset it, so interleaved old successes from other processes cannot
hide a dead target. An open breaker ignores successes altogether: only its probe closes it.
Failures are ordered by a per-target counter in Redis (`seq`), not by clocks, so process
clocks never matter; the open period and the probe token's life are measured with Redis'
own `TIME`, against the times stored in the breaker's hash (`clock` replaces it in tests).

If Redis is unreachable the breaker fails open: calls go through unguarded (and are
logged) rather than the pipeline stopping because its breaker state is unreadable.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import redis
from django.conf import settings
from redis.commands.core import Script

from core import metrics

logger = logging.getLogger(__name__)

KEY_PREFIX = "cot:breaker:"


def key_prefix() -> str:
    """Breaker keys, under the deployment's Redis key prefix (test runs sharing one Redis
    keep their breakers apart)."""
    return f"{settings.COT_REDIS_KEY_PREFIX}{KEY_PREFIX}"


# The breaker must never make a call slower than Redis answering a trivial script.
REDIS_TIMEOUT_SECONDS = 0.5


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Decision(IntEnum):
    ALLOW = 0
    PROBE = 1
    REFUSE = 2


# The breaker's clock, in seconds (as `time.time`). None, the default: each script reads
# Redis' own TIME, so the processes' clocks never matter. Tests set a clock they move by
# hand, to pass a reset period or a probe's life without waiting for it.
clock: Callable[[], float] | None = None


def _now_ms() -> str:
    """The scripts' NOW argument: milliseconds from `clock`, or "" for Redis' TIME."""
    return "" if clock is None else str(int(clock() * 1000))


# Every script's NOW (ms): the argument if given, else Redis' own clock. A probe is in
# flight while its token's life (`probe_until`) has not run out.
_NOW = """
local function now_ms(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function probing(now)
  return tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0') > now
end
"""

# KEYS: state hash. ARGV: probe ttl (ms), probe token, NOW.
# Returns {decision, seq at start, state, failures at start}.
_BEGIN = (
    _NOW
    + """
local fields = redis.call('HMGET', KEYS[1], 'open_until', 'seq', 'failures')
local open_until = tonumber(fields[1] or '0')
local seq = tonumber(fields[2] or '0')
if open_until == 0 then return {0, seq, 0, tonumber(fields[3] or '0')} end
local now = now_ms(ARGV[3])
if now < open_until then return {2, seq, 2, 0} end
if probing(now) then return {2, seq, 1, 0} end
redis.call('HSET', KEYS[1], 'probe', ARGV[2], 'probe_until', now + tonumber(ARGV[1]))
return {1, seq, 1, 0}
"""
)

# KEYS: state hash. ARGV: threshold, reset (ms), is probe (0/1), probe token, NOW.
# Returns the state after the failure.
_FAIL = (
    _NOW
    + """
local now = now_ms(ARGV[5])
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
if tonumber(redis.call('HGET', KEYS[1], 'failures') or '0') == 0 then
  redis.call('HSET', KEYS[1], 'streak_from', seq)
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[2]), 'opened_at', now)
  if redis.call('HGET', KEYS[1], 'probe') == ARGV[4] then
    redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
  end
  return 2
end
if open_until == 0 then
  if failures >= tonumber(ARGV[1]) then
    redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[2]), 'opened_at', now)
    return 2
  end
  return 0
end
if probing(now) then return 1 end
return 2
"""
)

# KEYS: state hash. ARGV: is probe (0/1), probe token, seq at start, NOW.
# Returns the state after the success.
_SUCCEED = (
    _NOW
    + """
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'failures', 0)
  redis.call('HDEL', KEYS[1], 'open_until', 'opened_at')
  if redis.call('HGET', KEYS[1], 'probe') == ARGV[2] then
    redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
  end
  return 0
end
if tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') ~= 0 then
  if probing(now_ms(ARGV[4])) then return 1 end
  return 2
end
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if failures > 0 then
  local streak_from = tonumber(redis.call('HGET', KEYS[1], 'streak_from') or '0')
  if tonumber(ARGV[3]) >= streak_from then redis.call('HSET', KEYS[1], 'failures', 0) end
end
return 0
"""
)

# KEYS: state hash. ARGV: token. Gives the probe token back when the call recorded nothing.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'probe') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
end
return 0
"""


@dataclass(frozen=True)
class _Connection:
    client: redis.Redis
    # Sent as EVALSHA (redis-py loads a script again if Redis lost it, e.g. a restart).
    begin: Script
    fail: Script
    succeed: Script
    release: Script


_connections: dict[str, _Connection] = {}


def _redis() -> redis.Redis:
    return _connection().client


def _connection() -> _Connection:
    # redis-py's pool reconnects after fork, so one client per URL serves every process.
    url = settings.REDIS_URL
    connection = _connections.get(url)
    if connection is None:
        client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        connection = _Connection(
            client=client,
            begin=client.register_script(_BEGIN),
            fail=client.register_script(_FAIL),
            succeed=client.register_script(_SUCCEED),
            release=client.register_script(_RELEASE),
        )
        _connections[url] = connection
    return connection


def _keys(target: str) -> list[str]:
    return [f"{key_prefix()}{target}"]


def _probe_ttl_ms() -> int:
    # The longest one call can take, plus a margin: a probe token outliving its call
    # would keep the breaker half-open with nobody probing.
    seconds = settings.COT_HTTP_CONNECT_TIMEOUT + settings.COT_HTTP_READ_TIMEOUT + 1
    return int(seconds * 1000)


_gauges: dict[str, Any] = {}


def _publish(target: str, state: int) -> None:
    gauge = _gauges.get(target)
    if gauge is None:  # labels() once per target and process: it runs on every call
        gauge = _gauges[target] = metrics.CIRCUIT_BREAKER_STATE.labels(target=target)
    gauge.set(state)


@dataclass
class Ticket:
    """One call's pass through the breaker: what to report when it ends."""

    target: str
    seq: int = 0
    probe_token: str = ""
    guarded: bool = True  # False when Redis could not be asked (the breaker failed open)
    done: bool = False
    # Closed with no failure streak when the call began: its success changes nothing.
    quiet: bool = False


class BreakerOpen(Exception):
    def __init__(self, target: str, state: BreakerState) -> None:
        super().__init__(f"{target}: circuit breaker {state.name.lower()}")
        self.target, self.state = target, state


def breaker_enter(target: str) -> Ticket:
    """Ask the breaker for `target` whether a call may go. Raises BreakerOpen if not."""
    token = uuid.uuid4().hex
    try:
        decision, seq, state, failures = _connection().begin(
            _keys(target), [_probe_ttl_ms(), token, _now_ms()]
        )
    except redis.RedisError as exc:
        logger.warning("breaker state for %s unreadable, letting the call through: %s", target, exc)
        return Ticket(target=target, guarded=False)
    _publish(target, int(state))
    if decision == Decision.REFUSE:
        raise BreakerOpen(target, BreakerState(int(state)))
    return Ticket(
        target=target,
        seq=int(seq),
        probe_token=token if decision == Decision.PROBE else "",
        quiet=decision == Decision.ALLOW and int(failures) == 0,
    )


def breaker_exit(ticket: Ticket, *, failed: bool | None) -> None:
    """Report how the call ended: `failed` True (counts against the target), False (the
    target answered), or None (the call never got an answer that says anything about the
    target, e.g. a bug before sending): then only a held probe token is given back."""
    if ticket.done or not ticket.guarded:
        return
    ticket.done = True
    if failed is False and ticket.quiet:
        # The common case, without a round trip to Redis: _SUCCEED would change nothing.
        # Not a probe; and with no streak when the call began, any streak now began after
        # it (seq then, streak_from now: streak_from > ticket.seq), which its success must
        # not reset; an open breaker ignores it. Every process that changes the state
        # publishes the new one, so the gauge ("mostrecent") loses nothing either.
        return
    keys = _keys(ticket.target)
    probe = "1" if ticket.probe_token else "0"
    try:
        connection = _connection()
        if failed is None:
            if ticket.probe_token:
                connection.release(keys, [ticket.probe_token])
            return
        if failed:
            state = connection.fail(
                keys,
                [
                    settings.COT_BREAKER_FAILURE_THRESHOLD,
                    int(settings.COT_BREAKER_RESET_SECONDS * 1000),
                    probe,
                    ticket.probe_token,
                    _now_ms(),
                ],
            )
        else:
            state = connection.succeed(keys, [probe, ticket.probe_token, ticket.seq, _now_ms()])
    except redis.RedisError as exc:
        logger.warning("could not record a call's outcome for %s: %s", ticket.target, exc)
        return
    _publish(ticket.target, int(state))


@dataclass(frozen=True)
class BreakerStatus:
    target: str
    state: BreakerState
    failures: int
    opened_at_ms: int | None
    retry_in_ms: int | None  # open: time left before the next call may probe


def breaker_status(target: str) -> BreakerStatus:
    """The live state of one breaker, read from Redis (for admin pages and tests)."""
    [hash_key] = _keys(target)
    client = _redis()
    with client.pipeline(transaction=True) as pipe:
        pipe.time()
        pipe.hgetall(hash_key)
        (seconds, micros), fields = pipe.execute()
    now = seconds * 1000 + micros // 1000 if clock is None else int(clock() * 1000)
    fields = {k.decode(): int(v) for k, v in fields.items() if k != b"probe"}
    open_until = fields.get("open_until", 0)
    if not open_until:
        state, retry_in = BreakerState.CLOSED, None
    elif fields.get("probe_until", 0) > now:
        state, retry_in = BreakerState.HALF_OPEN, None
    else:
        state, retry_in = BreakerState.OPEN, max(0, open_until - now)
    return BreakerStatus(
        target=target,
        state=state,
        failures=fields.get("failures", 0),
        opened_at_ms=fields.get("opened_at"),
        retry_in_ms=retry_in,
    )


def breaker_targets() -> list[str]:
    """Every target the deployment calls, for pages that list all breakers."""
    return [f"gateways/{g}" for g in settings.COT_PAYMENT_GATEWAYS] + [
        *(f"logistics/{p}" for p in settings.COT_LOGISTICS_PARTNERS),
        "notify",
    ]


def breaker_reset(target: str) -> None:
    """Forget a target's breaker state (ops, after fixing a target; tests)."""
    _redis().delete(*_keys(target))
