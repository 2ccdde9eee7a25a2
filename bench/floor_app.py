"""The `floor` scenario: the order pipeline's canvas with no-op tasks, on the same broker
settings, queues and worker pools as the real one (cot_project/celery.py), without Django.

    celery -A bench.floor_app worker -Q ... --pool ... (the same flags as the real workers)

What this reaches is what Celery itself does on this machine; every ratio refers to it.
"""

from __future__ import annotations

import json
import os
import time

import redis
from celery import Celery, chord, group
from kombu import Exchange, Queue

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
BROKER_URL = os.environ.get("BENCH_BROKER_URL") or REDIS_URL
AMQP = BROKER_URL.startswith("amqp")
DONE_KEY = "bench:floor:done"
QUEUES = ("pipeline", "payments", "logistics", "notifications", "maintenance")
if AMQP:
    # As cot_project.broker.task_queues declares them on RabbitMQ (a delivery limit of
    # its default; no dead letters arise here).
    TASK_QUEUES = [
        Queue(
            name,
            Exchange(name, type="topic"),
            routing_key=name,
            queue_arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": 10,
                "x-dead-letter-exchange": "dead_letters",
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        for name in QUEUES
    ]
    TRANSPORT: dict = {"broker_transport_options": {"confirm_publish": True}}
else:
    TASK_QUEUES = [Queue(name) for name in QUEUES]
    TRANSPORT = {
        "broker_transport": "cot_project.kombu_redis:Transport",
        "broker_transport_options": {"visibility_timeout": 3600, "max_connections": 200},
    }


app = Celery("bench_floor")
app.conf.update(
    broker_url=BROKER_URL,
    # The pipeline's transport and result backend, named by strings: kombu and Celery
    # import them (they import no Django), this outside peer does not.
    **TRANSPORT,
    result_backend=f"cot_project.celery_results:RedisBackend+{REDIS_URL}",
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    result_backend_transport_options={"visibility_timeout": 3600},
    result_expires=3600,
    result_backend_thread_safe=True,
    task_time_limit=120,
    task_soft_time_limit=110,
    task_queues=TASK_QUEUES,
    task_default_queue="pipeline",
    # The same queue for each step as the real pipeline (cot_project.celery.TASK_ROUTES).
    task_routes={
        "floor.payment_prepare": {"queue": "payments"},
        "floor.payment_charge": {"queue": "payments"},
        "floor.shipment_book": {"queue": "logistics"},
        "floor.*": {"queue": "pipeline"},
    },
    # As cot_project.settings.COT_TASK_EVENTS: off unless asked for (Flower turns them on).
    worker_send_task_events=os.environ.get("COT_TASK_EVENTS", "false").lower() == "true",
    task_send_sent_event=os.environ.get("COT_TASK_EVENTS", "false").lower() == "true",
    broker_connection_retry_on_startup=True,
    # The pipeline's steps store no results either (orders/tasks.py).
    task_ignore_result=True,
)

_redis = redis.Redis.from_url(REDIS_URL)


@app.task(name="floor.prescription_check")
def prescription_check(order_id: str) -> str:
    return "ok"


@app.task(name="floor.stock_reserve")
def stock_reserve(order_id: str) -> str:
    return "ok"


@app.task(name="floor.payment_prepare")
def payment_prepare(order_id: str) -> str:
    return "ok"


@app.task(name="floor.payment_charge")
def payment_charge(order_id: str) -> str:
    return "ok"


@app.task(name="floor.shipment_book")
def shipment_book(order_id: str) -> str:
    return "ok"


@app.task(name="floor.order_confirm")
def order_confirm(order_id: str, received_at: float) -> str:
    # The "confirmation": when the chain ends, against when its canvas was sent.
    _redis.rpush(DONE_KEY, json.dumps([order_id, received_at, time.time()]))
    return "ok"


@app.task(name="floor.pipeline_start", ignore_result=True)
def pipeline_start(order_id: str, received_at: float) -> None:
    # As the real pipeline: the client sends one small message, a worker builds the chord.
    canvas(order_id, received_at).apply_async()


def canvas(order_id: str, received_at: float):  # -> celery.canvas.Signature
    return (
        chord(
            group(
                prescription_check.si(order_id),
                stock_reserve.si(order_id),
                payment_prepare.si(order_id),
            ),
            payment_charge.si(order_id),
        )
        | shipment_book.si(order_id)
        | order_confirm.si(order_id, received_at)
    )
