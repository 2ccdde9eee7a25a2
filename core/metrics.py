"""Business metrics. Names and labels are a public interface (docs/API.md, "Metrics").

Every process (gunicorn workers, Celery worker processes) counts into
`PROMETHEUS_MULTIPROC_DIR` when it is set (prometheus_client's multiprocess mode), and
`/metrics` (`core.api.metrics`) adds the files up. Values that are a fact about the
database rather than about one process (orders in flight) are computed at scrape time by
collectors registered with `collector_register`; they are served beside the
multiprocess ones, never written to the files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from celery.signals import task_failure, worker_process_shutdown, worker_shutdown
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# Order latencies run from ~50 ms (inline, no outside latency) to a minute (retries).
ORDER_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120)
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

ORDERS_TOTAL = Counter(
    "cot_orders_total",
    "Orders that reached a terminal or confirmed status.",
    ["channel", "status"],
)
ORDER_DURATION_SECONDS = Histogram(
    "cot_order_duration_seconds",
    "Time from received to confirmed.",
    buckets=ORDER_DURATION_BUCKETS,
)
REVENUE_TOTAL = Counter("cot_revenue_total", "INR captured.")
ERRORS_TOTAL = Counter("cot_errors_total", "Errors by type.", ["error_type"])
PIPELINE_STEP_SECONDS = Histogram(
    "cot_pipeline_step_seconds", "Duration of one pipeline step.", ["step"], buckets=STEP_BUCKETS
)
EXTERNAL_CALL_SECONDS = Histogram(
    "cot_external_call_seconds",
    "Duration of outside HTTP calls by target and outcome.",
    ["target", "outcome"],
    buckets=STEP_BUCKETS,
)
SHIPMENTS_TOTAL = Counter(
    "cot_shipments_total",
    "Tracking updates applied to shipments, by partner and new status.",
    ["partner", "status"],
)
DELIVERY_FAILURES_TOTAL = Counter(
    "cot_delivery_failures_total",
    "Failed delivery attempts reported by the partners, by reason.",
    ["partner", "reason"],
)
RETURNS_TOTAL = Counter(
    "cot_returns_total", "Returns requested by customers, by reason.", ["reason"]
)
REFUNDED_TOTAL = Counter("cot_refunded_total", "INR refunded or paid out to customers.")
DEAD_LETTERS_TOTAL = Counter(
    "cot_dead_letters_total",
    "Task messages the broker dead-lettered after its delivery limit (RabbitMQ), by queue "
    "and task.",
    ["queue", "task"],
)
STOCK_WRITTEN_OFF_TOTAL = Counter(
    "cot_stock_written_off_total",
    "Units that came back and could not be sold again, by reason.",
    ["reason"],
)
RATE_LIMITED_TOTAL = Counter(
    "cot_rate_limited_total",
    "API requests refused with 429, by API client and the limit (orders, requests) refusing.",
    ["client", "limit"],
)
# The `reason` of a failed delivery the partner gave none for.
UNSPECIFIED = "unspecified"

# `cot_errors_total{error_type}` values
VALIDATION_ERROR = "validation_error"  # a 400 answer
PAYMENT_ERROR = "payment_error"  # an order ended payment_failed
FULFILMENT_ERROR = "fulfilment_error"  # an order cancelled because nothing could ship it
UNKNOWN_ERROR = "unknown_error"  # a 500 answer, or a task that raised out of its retries
ERROR_TYPES = (VALIDATION_ERROR, PAYMENT_ERROR, FULFILMENT_ERROR, UNKNOWN_ERROR)
for _error_type in ERROR_TYPES:
    # Present from the start at 0, so `rate()` and `increase()` see the first error.
    ERRORS_TOTAL.labels(error_type=_error_type)


def error_count(error_type: str) -> None:
    ERRORS_TOTAL.labels(error_type=error_type).inc()


def rate_limited_count(*, client: str, limit: str) -> None:
    RATE_LIMITED_TOTAL.labels(client=client, limit=limit).inc()


# --- Scrape-time collectors -----------------------------------------------------------------

_collectors: dict[str, Collector] = {}


def collector_register(name: str, collector: Collector) -> None:
    """Serve `collector` on `/metrics`. Its `collect()` runs at every scrape, in the web
    process that answers it, so it must be quick and must not raise. Registering the same
    name again replaces the collector (AppConfig.ready may run more than once)."""
    _collectors[name] = collector


def collectors() -> list[Collector]:
    return list(_collectors.values())


class RegistryCollector:
    """Adapts a whole registry into one collector (single-process mode: the default one)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


# --- Celery worker processes ----------------------------------------------------------------


def process_mark_dead(pid: int) -> None:
    """Drop a dead process's live gauges from the multiprocess directory (its counters
    stay: they are work that was done)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


@worker_process_shutdown.connect
def _worker_child_exit(pid: int | None = None, **_: Any) -> None:
    process_mark_dead(pid or os.getpid())


@worker_shutdown.connect
def _worker_exit(**_: Any) -> None:
    process_mark_dead(os.getpid())


@task_failure.connect
def _task_failed(**_: Any) -> None:
    # Expected trouble retries (task_retry) or ends the order as an outcome; a task that
    # fails outright is a bug or an exhausted non-pipeline task.
    error_count(UNKNOWN_ERROR)


# Set by every process on each breaker decision and transition; the breaker's state lives
# in Redis, so the most recent value written by any process is the current one.
CIRCUIT_BREAKER_STATE = Gauge(
    "cot_circuit_breaker_state",
    "Circuit breaker state per target: 0 closed, 1 half-open, 2 open.",
    ["target"],
    multiprocess_mode="mostrecent",
)

# A pharmacist's review: from the first waiting order's hold (or the upload) to the decision;
# minutes to hours, against COT_REVIEW_SLA_SECONDS (30 minutes by default).
RX_REVIEW_BUCKETS = (60, 300, 600, 900, 1200, 1800, 2700, 3600, 7200, 14400, 28800, 86400)
RX_REVIEW_SECONDS = Histogram(
    "cot_rx_review_seconds",
    "Time a prescription waited for its pharmacist's decision.",
    buckets=RX_REVIEW_BUCKETS,
)
