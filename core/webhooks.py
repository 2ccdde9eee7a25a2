"""Signed webhooks: `X-COT-Signature: sha256=<hex HMAC-SHA256 of the raw body>` with
the partner's secret, on the partners' webhooks into COT (every partner's view shares
the code here) and on COT's webhooks out to its clients."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from rest_framework import exceptions, permissions, status
from rest_framework.request import Request
from rest_framework.views import APIView

from core.parsers import json_loads

SIGNATURE_HEADER = "X-COT-Signature"


class BadSignature(exceptions.APIException):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = f"Missing or bad {SIGNATURE_HEADER} header."
    default_code = "bad_signature"


def webhook_signature(secret: str, body: bytes) -> str:
    """The header value a sender puts on `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_signatures(secrets: list[str], body: bytes) -> str:
    """The header value for a body signed with several secrets (a client's new and
    replaced webhook secrets during a rotation): `sha256=<new>,sha256=<old>`."""
    return ",".join(webhook_signature(secret, body) for secret in secrets)


def webhook_signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not secret:
        return False
    return hmac.compare_digest(webhook_signature(secret, body), header.strip())


class SignedWebhookApi(APIView):
    """Base for partner webhooks: the signature is the authentication (no API key, no
    session), checked over the raw body before anything parses it. Subclasses say which
    secret (`secret()`) and read the body with `verified_json(request)`. The body-size
    limits (middleware and DATA_UPLOAD_MAX_MEMORY_SIZE) apply as everywhere."""

    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]

    def secret(self) -> str:
        raise NotImplementedError

    def verified_json(self, request: Request) -> Any:
        body = request.body
        if not webhook_signature_valid(self.secret(), body, request.headers.get(SIGNATURE_HEADER)):
            raise BadSignature()
        return json_loads(body)
