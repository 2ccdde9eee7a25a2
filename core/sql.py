"""The SQL the ORM cannot say, for the kernel: the readiness probe's round trip.

"Is the database there, and does it answer in time?" has no model to query: the probe
sends `SELECT 1`, on PostgreSQL under a statement timeout local to its own transaction
(`set_config(..., true)` is `SET LOCAL` with a bound parameter), so a database that
accepts connections but cannot run statements is reported down instead of hanging the
probe. Runs on PostgreSQL and SQLite. Not a speed-up: nothing here is on an order's path.
"""

from __future__ import annotations

from django.db import connection, transaction


def database_ping(*, timeout_seconds: float) -> None:
    """One round trip to the default database; raises when it does not answer."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with transaction.atomic():
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    [str(int(timeout_seconds * 1000))],
                )
                cursor.execute("SELECT 1")
        else:
            cursor.execute("SELECT 1")
