"""Fault injection for the chaos tests, and for nothing else.

`COT_FAULT_INJECTION` (a comma-separated list, empty by default) names faults that the
end-to-end tests switch on in the processes they start, to cause for real what production
sees now and then: an API server that dies between commit and enqueue, a task that kills
its worker every time. Unset, every function here is a no-op. Never set it in production.
"""

from __future__ import annotations

import logging
import os

from django.conf import settings

logger = logging.getLogger(__name__)

# The order is committed but the pipeline is never started, as if the API server died
# right after the commit (orders.services.placement).
AFTER_COMMIT_BEFORE_ENQUEUE = "after_commit_before_enqueue"
# `crash_in_step:<step>`: the worker process dies (os._exit) in that pipeline step, after
# the step's attempt was counted, on every delivery (orders.services.steps).
CRASH_IN_STEP = "crash_in_step:"


def fault_active(name: str) -> bool:
    return name in settings.COT_FAULT_INJECTION


def fault_crash_point(name: str) -> None:
    """Die here, without cleanup, if the fault `name` is switched on."""
    if fault_active(name):
        logger.error("fault injection: %s, the process exits now", name)
        logging.shutdown()
        os._exit(70)
