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
    """Authenticates the request as an `ApiClient`: `request.user` is the client,
    `request.auth` the id of its key."""

    def authenticate(self, request: Request) -> tuple[ApiClient, str] | None:
        scheme, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != KEYWORD.lower():
            return None
        key = key.strip()
        if not _KEY_SHAPE.match(key):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        # One statement: the key by its prefix (unique), not revoked, with its client,
        # which must be active.
        api_key = (
            ClientAPIKey.objects.get_usable_keys()
            .select_related("client")
            .filter(prefix=key.partition(".")[0], client__active=True)
            .first()
        )
        # The library's checks: expiry, and the key's hash (sha512, unsalted: keys are
        # random) against the stored one, in constant time.
        if api_key is None or api_key.has_expired or not api_key.is_valid(key):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return api_key.client, api_key.pk

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


class StaffBasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic for staff scripts (DRF's), except that a username or password holding a
    NUL byte is refused (401) before the user lookup: PostgreSQL cannot hold one and would
    raise, as for the API key's shape above."""

    def authenticate_credentials(
        self, userid: str, password: str, request: Request | None = None
    ) -> tuple[object, None]:
        if "\x00" in userid or "\x00" in password:
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        return super().authenticate_credentials(userid, password, request)
