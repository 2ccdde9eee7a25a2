"""The broker: Redis (the default) or RabbitMQ, chosen by the scheme of `BROKER_URL`.

On RabbitMQ every task queue is a quorum queue (replicated, and it survives a node's
restart), publishes wait for the broker's confirm, and a message that has been delivered
more than the delivery limit times without being acknowledged (one that kills its
worker every time: the worker gives it back, and again) is dead-lettered to one queue,
`dead_letters`, instead of looping. Celery (5.5+) sees the quorum queues, uses
per-consumer prefetch (quorum queues refuse global QoS) and sends countdown and ETA
tasks through RabbitMQ's native delayed delivery (a ladder of TTL queues that
dead-letter into the task's exchange when the time has come), which needs topic
exchanges: so each queue gets a topic exchange of its own name.

Results, chord counters and the circuit breakers stay in Redis on either broker.

No Django here (see kombu_redis), so the benchmark's `floor` app and the tests can build
the same queues.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kombu import Exchange, Queue

# Every task queue dead-letters here, and this queue keeps what arrives until the
# maintenance worker drains it (cot_project/tasks.py).
DEAD_LETTER_EXCHANGE = "dead_letters"
DEAD_LETTER_QUEUE = "dead_letters"


def is_amqp(url: str) -> bool:
    """True for a RabbitMQ URL (`amqp://`, `amqps://`, `pyamqp://`)."""
    return url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")


def task_queues(names: tuple[str, ...], *, amqp: bool, delivery_limit: int) -> list[Queue]:
    """The task queues as declared on the broker. On Redis plain queues (the transport
    ignores exchanges); on RabbitMQ quorum queues, each on a topic exchange of its own
    name, with the delivery limit and the dead-letter exchange."""
    if not amqp:
        return [Queue(name) for name in names]
    return [
        Queue(
            name,
            Exchange(name, type="topic"),
            routing_key=name,
            queue_arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                # At-least-once dead-lettering: the message leaves the task queue only
                # once the dead-letter queue has it (RabbitMQ requires reject-publish
                # overflow for that; the task queues have no length limit anyway).
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        for name in names
    ]


def dead_letter_queue() -> Queue:
    """Where dead-lettered tasks wait for ops (a quorum queue too; fanout: whatever the
    routing key the message had)."""
    return Queue(
        DEAD_LETTER_QUEUE,
        Exchange(DEAD_LETTER_EXCHANGE, type="fanout"),
        routing_key=DEAD_LETTER_QUEUE,
        queue_arguments={"x-queue-type": "quorum"},
    )


def whole_seconds_countdown(
    countdown: float | None, eta: datetime | None, now: datetime
) -> tuple[float | None, datetime | None]:
    """(countdown, eta) as native delayed delivery can take them: whole seconds.

    Celery routes a delayed task by `int(countdown)` and refuses anything under one
    second; the pipeline's retries back off by fractions of seconds (jitter). A positive
    delay is rounded up to whole seconds (never sooner than asked), an ETA becomes that
    countdown; none or a past time is sent as it is.
    """
    if eta is not None:
        if eta.tzinfo is None:
            eta = eta.replace(tzinfo=UTC)
        seconds = (eta - now).total_seconds()
        if seconds <= 0:
            return countdown, eta
        return float(math.ceil(seconds)), None
    if countdown is not None and countdown > 0:
        return float(math.ceil(countdown)), None
    return countdown, eta


def transport_options(*, amqp: bool, visibility_timeout: int, key_prefix: str) -> dict[str, Any]:
    if amqp:
        # The publisher waits for RabbitMQ's confirm: a task the API answered 202 for is
        # on disk in the queue (or the publish raises).
        return {"confirm_publish": True}
    # Redis re-delivers a message that was not acked within the visibility timeout, so
    # it must exceed every time limit and every countdown (retries, ETA).
    return {
        "visibility_timeout": visibility_timeout,
        "max_connections": 200,
        "global_keyprefix": key_prefix,
    }


@dataclass(frozen=True)
class DeadLetter:
    """What a dead-lettered Celery message says about itself."""

    task: str
    task_id: str
    args: list[Any]
    queue: str
    reason: str
    deliveries: int


def dead_letter_read(headers: dict[str, Any], body: Any, *, delivery_limit: int) -> DeadLetter:
    """A dead letter from its AMQP headers and decoded body (Celery's message protocol 2:
    the body is [args, kwargs, options]). RabbitMQ records why and from where in
    `x-death`; it resets the delivery count on the way, but a message dead-lettered for
    its `delivery_limit` was delivered once and redelivered `delivery_limit` times."""
    deaths = headers.get("x-death") or [{}]
    args = body[0] if isinstance(body, list | tuple) and body and isinstance(body[0], list) else []
    reason = str(deaths[0].get("reason", headers.get("x-first-death-reason", "")))
    return DeadLetter(
        task=str(headers.get("task", "")),
        task_id=str(headers.get("id", "")),
        args=args,
        queue=str(deaths[0].get("queue", headers.get("x-first-death-queue", ""))),
        reason=reason,
        deliveries=delivery_limit + 1 if reason == "delivery_limit" else 0,
    )
