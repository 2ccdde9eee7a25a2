"""kombu's Redis transport with one shared client per channel.

kombu 5.7 builds a new `redis.Redis` for almost every broker operation (each publish, ack,
event and queue-size check goes through `Channel.conn_or_acquire()`), and redis-py 8
copies its ~170-entry response-callback table into every new client: under load that
construction was the largest single item in a worker's profile (docs/BENCHMARKS.md).
A `redis.Redis` is safe to share between threads and greenlets (each command checks a
connection out of the channel's pool; pipelines stay per use), which is what this does;
the wire protocol and the keys are unchanged. Upstream: redis/redis-py#3624,
redis/redis-py#4124.

Selected with Celery's `broker_transport` (cot_project/celery.py); the URL stays
`redis://…`. This module imports nothing from Django (nor does the package's
`__init__`), so the benchmark's `floor` app uses it too and the two are compared on the
same broker code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    @cached_property
    def shared_client(self) -> redis.Redis:
        """The client every operation without one of its own uses: kombu's client class
        (key prefix included) on the channel's connection pool, as kombu builds it."""
        return self.Client(connection_pool=self.pool)

    @contextmanager
    def conn_or_acquire(self, client: redis.Redis | None = None) -> Iterator[redis.Redis]:
        yield client if client else self.shared_client


class Transport(kombu_redis.Transport):
    Channel = Channel
