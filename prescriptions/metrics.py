"""The pharmacist's review queue on `/metrics`.

`cot_rx_pending_reviews` and `cot_rx_oldest_wait_seconds` are facts about the database,
counted from the rows at scrape time like `cot_orders_in_flight` (registered with
`core.metrics.collector_register`). `cot_rx_review_seconds` is observed once per decision,
when it commits, by `rx_review_observed`: the admin's review page calls it, and so must any
other place a decision is made (the API).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator

from django.db import DatabaseError, transaction
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from core.metrics import RX_REVIEW_SECONDS
from prescriptions.models import Prescription
from prescriptions.selectors import prescription_review_queue_summary, prescription_waiting_since

logger = logging.getLogger(__name__)

# Set on a decided Prescription once its wait is observed, so that a decision seen by two
# callers (the review service and the admin view around it) is counted once.
_OBSERVED = "_rx_review_observed"


def rx_review_observed(
    prescription: Prescription, *, waiting_since: datetime.datetime | None = None
) -> None:
    """Observe how long `prescription` (just decided) waited for its pharmacist, once the
    decision commits. The wait runs from `waiting_since`, by default from the hold of the
    first order waiting on it (or its upload): call it before those orders resume, inside
    the decision's transaction, or pass `waiting_since` read before the decision."""
    if prescription.reviewed_at is None or getattr(prescription, _OBSERVED, False):
        return
    setattr(prescription, _OBSERVED, True)
    since = waiting_since or prescription_waiting_since(prescription=prescription)
    seconds = max((prescription.reviewed_at - since).total_seconds(), 0.0)
    transaction.on_commit(lambda: RX_REVIEW_SECONDS.observe(seconds))


class ReviewQueueCollector:
    def collect(self) -> Iterator[Metric]:
        try:
            summary = prescription_review_queue_summary(now=timezone.now())
        except DatabaseError:
            # As for cot_orders_in_flight: the scrape serves the rest, the gap is the signal.
            logger.warning("cot_rx_* review queue gauges: database unavailable, left out")
            return
        yield GaugeMetricFamily(
            "cot_rx_pending_reviews",
            "Prescriptions pending a pharmacist's review (with or without a waiting order).",
            value=summary.pending,
        )
        oldest = summary.oldest_wait.total_seconds() if summary.oldest_wait else 0.0
        yield GaugeMetricFamily(
            "cot_rx_oldest_wait_seconds",
            "The longest wait in the review queue, from the first waiting order's hold "
            "(or the upload); 0 when the queue is empty.",
            value=oldest,
        )
