"""The Celery app. Broker settings here are what the pipeline's safety rests on: late
acknowledgement, redelivery of a lost worker's tasks, and a visibility timeout longer
than any task may take (Redis) or quorum queues with a delivery limit (RabbitMQ:
cot_project/broker.py)."""

from __future__ import annotations

import logging.config
import os
from datetime import datetime
from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import beat_init, celeryd_init, setup_logging, worker_ready
from django.conf import settings

from cot_project import broker, celery_results
from cot_project.apps import dev_only_secrets_refuse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cot_project.settings")


class CotCelery(Celery):
    """Celery, with delays in whole seconds on RabbitMQ (broker.whole_seconds_countdown):
    a retry's jittered sub-second countdown would otherwise fail to publish there."""

    whole_second_delays = False

    def send_task(
        self,
        name: str,
        args: Any = None,
        kwargs: Any = None,
        countdown: float | None = None,
        eta: datetime | str | None = None,
        **options: Any,
    ) -> Any:
        if self.whole_second_delays and (countdown or eta):
            if isinstance(eta, str):
                eta = datetime.fromisoformat(eta)
            countdown, eta = broker.whole_seconds_countdown(countdown, eta, self.now())
        return super().send_task(name, args, kwargs, countdown=countdown, eta=eta, **options)


app = CotCelery("cot")

# One queue per domain, so a slow SMS provider never starves payments and each queue can
# get its own workers (the Procfile's roles: docs/OPERATIONS.md).
QUEUES = ("pipeline", "payments", "logistics", "notifications", "maintenance")
# The periodic sweeps, each on the maintenance queue every COT_SWEEP_INTERVAL_SECONDS:
# beat entry name -> task.
SWEEPS = {
    "sweep-stuck-orders": "orders.sweep_stuck_orders",
    "expire-reservations": "orders.expire_reservations",
    "expire-prescription-holds": "orders.expire_holds",
    "expire-substitutions": "orders.expire_substitutions",
    "expire-payment-retries": "orders.expire_payment_retries",
    "expire-uncollected-pickups": "orders.expire_pickups",
    "sweep-unsent-refunds": "payments.sweep_refunds",
    "sweep-owed-amendments": "logistics.sweep_amendments",
    "webhook-outbox-sweep": "notifications.webhook_sweep",
    "notification-outbox-sweep": "notifications.notification_sweep",
}
# On RabbitMQ only: what the broker dead-lettered becomes a flag ops see (tasks.py).
AMQP_SWEEPS = {"drain-dead-letters": "maintenance.drain_dead_letters"}
TASK_ROUTES = {
    # Exact names first: the pipeline's outside calls go to their domain's queue.
    "orders.prepare_payment": {"queue": "payments"},
    "orders.charge_payment": {"queue": "payments"},
    "orders.book_shipment": {"queue": "logistics"},
    **{task: {"queue": "maintenance"} for task in SWEEPS.values()},
    "forecasting.*": {"queue": "maintenance"},
    "orders.*": {"queue": "pipeline"},
    "payments.*": {"queue": "payments"},
    "logistics.*": {"queue": "logistics"},
    "notifications.*": {"queue": "notifications"},
    "privacy.*": {"queue": "maintenance"},
    "maintenance.*": {"queue": "maintenance"},
}


def _configure() -> None:
    amqp = broker.is_amqp(settings.CELERY_BROKER_URL)
    app.whole_second_delays = amqp
    sweeps = {**SWEEPS, **(AMQP_SWEEPS if amqp else {})}
    if not amqp:
        # kombu's Redis transport with one shared redis-py client per channel instead of a
        # new client per publish/ack (the largest item in a worker's profile): kombu_redis.py.
        app.conf.broker_transport = "cot_project.kombu_redis:Transport"
    app.conf.update(
        broker_url=settings.CELERY_BROKER_URL,
        # Celery's Redis backend, minus subscriptions to results nobody waits for (the
        # pipeline's chord, built in a worker's task): celery_results.py.
        result_backend=celery_results.backend_url(settings.CELERY_RESULT_BACKEND),
        task_always_eager=settings.CELERY_TASK_ALWAYS_EAGER,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        # A task is acknowledged only when it has finished, and a worker that dies mid-task
        # gives its message back; every step is idempotent, which is what makes this safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=broker.transport_options(
            amqp=amqp,
            visibility_timeout=settings.COT_VISIBILITY_TIMEOUT,
            key_prefix=settings.COT_REDIS_KEY_PREFIX,
        ),
        result_backend_transport_options={
            "visibility_timeout": settings.COT_VISIBILITY_TIMEOUT,
            "global_keyprefix": settings.COT_REDIS_KEY_PREFIX,
            # Give up on an unreachable Redis in ~2 s, not Celery's ~20 s: sending a chord
            # touches the result backend, and an order request must not hang that long
            # (the order is committed; the sweeper starts it when Redis is back).
            "retry_policy": {"max_retries": 3, "interval_step": 0.5, "interval_max": 1},
        },
        result_expires=3600,
        result_backend_thread_safe=True,
        task_time_limit=settings.COT_TASK_TIME_LIMIT,
        task_soft_time_limit=settings.COT_TASK_TIME_LIMIT - 10,
        task_queues=broker.task_queues(
            QUEUES, amqp=amqp, delivery_limit=settings.COT_BROKER_DELIVERY_LIMIT
        ),
        task_default_queue="pipeline",
        task_routes=TASK_ROUTES,
        # Task events let Flower show every step of the pipeline, and cost about a tenth of
        # a worker's CPU (docs/BENCHMARKS.md). Flower switches them on in every worker while
        # it runs (its `enable_events`, on by default), so they cost nothing when nobody
        # watches; COT_TASK_EVENTS=true keeps them on regardless (and adds task-sent events).
        worker_send_task_events=settings.COT_TASK_EVENTS,
        task_send_sent_event=settings.COT_TASK_EVENTS,
        broker_connection_retry_on_startup=True,
        beat_schedule={
            name: {
                "task": task,
                "schedule": float(settings.COT_SWEEP_INTERVAL_SECONDS),
                "options": {"queue": "maintenance", "expires": settings.COT_SWEEP_INTERVAL_SECONDS},
            }
            for name, task in sweeps.items()
        }
        | {
            # Daily, at a quiet hour (UTC): personal data past its retention is redacted.
            "redact-expired-pii": {
                "task": "privacy.redact_expired_pii",
                "schedule": crontab(hour=2, minute=30),
                "options": {"queue": "maintenance", "expires": 6 * 3600},
            },
            # Nightly: demand, forecasts and replenishment (docs/FORECASTING.md).
            "forecast-demand": {
                "task": "forecasting.forecast_demand",
                "schedule": crontab(
                    hour=settings.COT_FORECAST_HOUR, minute=settings.COT_FORECAST_MINUTE
                ),
                "options": {"queue": "maintenance", "expires": 6 * 3600},
            },
        },
    )


_configure()
app.autodiscover_tasks()


@worker_ready.connect
def _declare_dead_letters(sender: Any = None, **_: object) -> None:
    """On RabbitMQ, the dead-letter queue exists before any task queue can use it (a
    message dead-lettered to a missing exchange is dropped)."""
    if broker.is_amqp(app.conf.broker_url):
        with app.connection_for_write() as conn:
            broker.dead_letter_queue()(conn.default_channel).declare()


@setup_logging.connect
def _use_django_logging(**_: object) -> None:
    """With a receiver here Celery leaves logging alone: workers and beat log through
    Django's LOGGING (JSON lines in production, with the order fields) like the API."""
    logging.config.dictConfig(settings.LOGGING)


@celeryd_init.connect
@beat_init.connect
def _refuse_dev_only_secrets(**_: object) -> None:
    # A worker or beat with DEBUG off does not start on a DEV-ONLY secret.
    dev_only_secrets_refuse()
