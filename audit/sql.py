"""The SQL the ORM cannot say, for the audit trail: who is acting, told to the database.

The trail is written by PostgreSQL triggers (django-pghistory), so they see every change,
including a service's conditional `update()`. They read the acting staff member from two
settings of the database session, `pghistory.context_id` and `pghistory.context_metadata`,
the names pghistory's own triggers read. pghistory's `context()` sets them by prefixing
every statement with `SELECT set_config(...);`, which PostgreSQL refuses under the
server-side parameter binding our settings turn on (one statement per prepared query), so
the audit middleware sets them once per admin request here, as a statement of its own,
and clears them before the connection goes back to the pool. Only PostgreSQL has the
triggers; elsewhere these are no-ops. Not a speed-up: nothing here is on an order's path.
"""

from __future__ import annotations

from django.db import connection

# The triggers' WHEN clause: record a change only while a staff member's admin request is
# being served (the pipeline's own writes are in each order's timeline).
IN_STAFF_CONTEXT = "NULLIF(current_setting('pghistory.context_id', true), '') IS NOT NULL"


def staff_context_set(*, context_id: str, metadata_json: str) -> bool:
    """Tell this connection's session who is acting; False where there are no triggers."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('pghistory.context_id', %s, false), "
            "set_config('pghistory.context_metadata', %s, false)",
            [context_id, metadata_json],
        )
    return True


def staff_context_clear() -> None:
    """Forget the acting staff member, so the next user of this connection is not them."""
    if connection.vendor != "postgresql" or connection.connection is None:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('pghistory.context_id', '', false), "
            "set_config('pghistory.context_metadata', '', false)"
        )
