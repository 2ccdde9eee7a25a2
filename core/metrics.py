"""Business metrics (CONTRACT.md §3). Names and labels are part of the contract."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
# Set by every process on each breaker decision and transition; the breaker's state lives
# in Redis, so the most recent value written by any process is the current one.
CIRCUIT_BREAKER_STATE = Gauge(
    "cot_circuit_breaker_state",
    "Circuit breaker state per target: 0 closed, 1 half-open, 2 open.",
    ["target"],
    multiprocess_mode="mostrecent",
)
