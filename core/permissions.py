"""Who may call an endpoint, shared by every app's API."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from core.models import ApiClient


class IsApiClient(permissions.BasePermission):
    """Channel endpoints belong to channel clients (an `Api-Key`), not to staff logins."""

    message = "This endpoint needs a channel client's API key."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, ApiClient)
