"""Order gauges computed from the database when Prometheus scrapes.

`cot_orders_in_flight` is a fact about the database, not about one process: counting it
from the rows at scrape time is exact whichever process moved the orders, and needs no
multiprocess gauge mode. Registered with `core.metrics.collector_register` in
`OrdersConfig.ready`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from orders.selectors import order_count_in_flight

logger = logging.getLogger(__name__)


class OrdersInFlightCollector:
    def collect(self) -> Iterator[Metric]:
        try:
            count = order_count_in_flight()
        except DatabaseError:
            # A scrape must still serve the other metrics; the gap itself is the signal
            # (alert on `absent(cot_orders_in_flight)`), and /readyz names the database.
            logger.warning("cot_orders_in_flight: database unavailable, left out")
            return
        yield GaugeMetricFamily(
            "cot_orders_in_flight",
            "Orders received or processing: the pipeline still owes them an outcome.",
            value=count,
        )
