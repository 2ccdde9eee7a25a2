"""Who is acting, for the audit trail: every admin request that may change something
(POST) by a signed-in staff member runs inside an audit context (audit/sql.py), which the
database's audit triggers copy into each row they write: the user, the admin action (or
edit, add, delete) and the reason given for it."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from audit import sql

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/admin/"
# The free-text fields in which the admin's confirmation pages ask why.
REASON_FIELDS = ("reason", "note", "decision_note")
REASON_MAX_CHARS = 500
# An admin URL's name ends with the view it is: these are the model pages' own.
VIEW_ACTIONS = {"_add": "add", "_change": "edit", "_delete": "delete"}


def admin_action_describe(request: HttpRequest) -> tuple[str, str]:
    """(action, reason) of an admin POST: the action's description (or edit, add, delete,
    or the admin page's name) and the reason typed with it, if any."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return "", ""
    typed = next(
        (request.POST[f].strip() for f in REASON_FIELDS if request.POST.get(f, "").strip()), ""
    )[:REASON_MAX_CHARS]
    action_name = request.POST.get("action", "")
    model_admin = getattr(match.func, "model_admin", None)
    if action_name and model_admin is not None:
        actions = model_admin.get_actions(request)
        action = str(actions[action_name][2]) if action_name in actions else action_name
    else:
        url_name = match.url_name or ""
        action = next(
            (label for suffix, label in VIEW_ACTIONS.items() if url_name.endswith(suffix)),
            url_name,
        )
    reason = f"{action}: {typed}" if typed else action
    return action, reason


class StaffAuditContextMiddleware:
    """Must come after the authentication middleware (it reads `request.user`)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self._audited(request):
            return self.get_response(request)
        action, reason = admin_action_describe(request)
        metadata: dict[str, Any] = {
            "user": request.user.pk,
            "username": request.user.get_username(),
            "action": action,
            "reason": reason,
            "url": request.path,
        }
        active = sql.staff_context_set(
            context_id=str(uuid.uuid4()), metadata_json=json.dumps(metadata, cls=DjangoJSONEncoder)
        )
        try:
            return self.get_response(request)
        finally:
            if active:
                self._clear()

    @staticmethod
    def _audited(request: HttpRequest) -> bool:
        user = getattr(request, "user", None)
        return (
            request.method not in ("GET", "HEAD", "OPTIONS")
            and request.path_info.startswith(ADMIN_PREFIX)
            and user is not None
            and user.is_authenticated
            and user.is_staff
        )

    @staticmethod
    def _clear() -> None:
        try:
            sql.staff_context_clear()
        except DatabaseError:
            # A session that cannot be told to forget the user must not serve anyone else.
            logger.warning("audit context not cleared; closing the connection")
            connection.close()
