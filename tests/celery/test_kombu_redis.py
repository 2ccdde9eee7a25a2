"""The broker transport with one shared redis-py client per channel, against the real
Redis (the test database): messages go through and come back acknowledged, from many
threads at once, and the channel builds its client once instead of once per operation."""

from __future__ import annotations

import threading
import uuid

import redis
from celery import current_app
from django.conf import settings
from kombu import Connection, Exchange, Queue

from cot_project import kombu_redis


def test_the_celery_app_uses_the_shared_client_transport():
    assert current_app.main == "cot"
    with current_app.connection_for_write() as connection:
        assert isinstance(connection.transport, kombu_redis.Transport)


def test_messages_published_from_many_threads_are_all_consumed_once(monkeypatch):
    created = 0
    original = redis.Redis.__init__

    def counting(self, *args, **kwargs):
        nonlocal created
        created += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    name = f"test-kombu-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name), routing_key=name)
    options = {"global_keyprefix": settings.COT_REDIS_KEY_PREFIX}
    with Connection(
        settings.CELERY_BROKER_URL, transport=kombu_redis.Transport, transport_options=options
    ) as connection:
        queue(connection.default_channel).declare()
        producer = connection.Producer()
        lock = threading.Lock()

        def publish(start: int) -> None:
            for n in range(start, start + 50):
                with lock:  # a kombu producer is not thread-safe; its Redis client is
                    producer.publish({"n": n}, exchange=queue.exchange, routing_key=name)

        threads = [threading.Thread(target=publish, args=(i * 50,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        received: list[int] = []
        with connection.Consumer(
            queue, callbacks=[lambda body, m: (received.append(body["n"]), m.ack())]
        ):
            while len(received) < 200:
                connection.drain_events(timeout=5)
        queue(connection.default_channel).delete()
    assert sorted(received) == list(range(200))
    # 200 publishes and 200 acks, yet only a handful of clients (the shared one, the
    # consumer's async client, the sub client).
    assert created <= 4
