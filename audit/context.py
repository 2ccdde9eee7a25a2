"""Who is acting, for the audit trail, when a change is made outside an admin request: a
management command run by hand (a customer's export or erasure) says who ran it and what,
and the database's audit triggers copy that into each row they write, as they do for a
staff member's admin request (`audit.middleware`)."""

from __future__ import annotations

import getpass
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connection

from audit import sql

logger = logging.getLogger(__name__)


def command_line_actor() -> str:
    """`command-line (<OS user>)`: who ran a command, as the trail names them."""
    return f"command-line ({getpass.getuser()})"


@contextmanager
def acting(actor: str, action: str, reason: str) -> Iterator[None]:
    """Record the changes made inside as `actor`'s (no staff user: `user` is null), with
    `action` and `reason`, in the metadata shape the admin's rows have. Forgotten on leaving,
    so the connection's next user is not recorded as them."""
    metadata: dict[str, Any] = {
        "user": None,
        "username": actor,
        "action": action,
        "reason": reason,
        "url": None,
    }
    active = sql.staff_context_set(context_id=str(uuid.uuid4()), metadata_json=json.dumps(metadata))
    try:
        yield
    finally:
        if active:
            try:
                sql.staff_context_clear()
            except DatabaseError:
                # A session that cannot be told to forget the actor must not serve anyone else.
                logger.warning("audit context not cleared; closing the connection")
                connection.close()
