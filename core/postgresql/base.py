"""django-prometheus' PostgreSQL backend, with its instrumented cursor class built once.

django-prometheus (2.5) builds a new cursor subclass in every `get_connection_params()`,
that is on every `connect()`. With psycopg's pool a connection is "opened" at every task
and again after every outside call (core.http gives it back for the call's length), and
building a class costs more than the statement it instruments. Its cursor also looks up
its label children (`labels(...)`) on every statement. Here the class is made once per
(cursor class, alias, vendor) and holds its children; the metrics, their names, labels and
what they count are django-prometheus' own (`django_db_*`, CONTRACT.md §3).

Selected in cot_project/settings.py as ENGINE `core.postgresql`.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from django_prometheus.db import errors_total, execute_many_total, execute_total
from django_prometheus.db import query_duration_seconds as duration
from django_prometheus.db.backends.postgresql import base as prometheus_base


@functools.cache
def instrumented_cursor_class(cursor_class: type, alias: str, vendor: str) -> type:
    """`cursor_class` counting its statements, their errors and durations in
    django-prometheus' metrics, as `django_prometheus.db.common.ExportingCursorWrapper`."""
    executed = execute_total.labels(alias, vendor)
    executed_many = execute_many_total.labels(alias, vendor)
    took = duration.labels(alias=alias, vendor=vendor)

    def timed(method: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        except BaseException as exc:
            errors_total.labels(alias=alias, vendor=vendor, type=type(exc).__name__).inc()
            raise
        finally:
            took.observe(time.perf_counter() - started)

    class InstrumentedCursor(cursor_class):  # type: ignore[misc, valid-type]
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            executed.inc()
            return timed(super().execute, *args, **kwargs)

        def executemany(self, query: Any, param_list: Any, *args: Any, **kwargs: Any) -> Any:
            executed.inc(len(param_list))
            executed_many.inc(len(param_list))
            return timed(super().executemany, query, param_list, *args, **kwargs)

    InstrumentedCursor.__name__ = InstrumentedCursor.__qualname__ = (
        f"Instrumented{cursor_class.__name__}"
    )
    return InstrumentedCursor


class DatabaseWrapper(prometheus_base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        # Django's parameters (skipping django-prometheus' override), with the cached class.
        params = super(prometheus_base.DatabaseWrapper, self).get_connection_params()
        params["cursor_factory"] = instrumented_cursor_class(
            params["cursor_factory"], self.alias, self.vendor
        )
        return params
