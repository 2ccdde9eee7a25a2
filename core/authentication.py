"""`Authorization: Api-Key <key>` for channel clients (djangorestframework-api-key)."""

from __future__ import annotations

import re

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.models import ApiClient, ClientAPIKey

KEYWORD = "Api-Key"
# Keys are "<prefix>.<secret>" of ASCII letters and digits; anything else is refused before
# it reaches the database (a NUL byte, say, would make PostgreSQL raise).
_KEY_SHAPE = re.compile(r"^[A-Za-z0-9]{1,16}\.[A-Za-z0-9]{1,128}$")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates the request as an `ApiClient`: `request.user` is the client."""

    def authenticate(self, request: Request) -> tuple[ApiClient, ClientAPIKey] | None:
        scheme, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != KEYWORD.lower():
            return None
        key = key.strip()
        if not _KEY_SHAPE.match(key):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        prefix = key.partition(".")[0]
        api_key = (
            ClientAPIKey.objects.get_usable_keys()
            .select_related("client")
            .filter(prefix=prefix)
            .first()
        )
        if (
            api_key is None
            or not api_key.is_valid(key)
            or api_key.has_expired
            or not api_key.client.active
        ):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return api_key.client, api_key

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD
