"""Refuse oversized bodies before anything reads them."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.errors import json_error


class BodySizeLimitMiddleware:
    """413 in the contract's error shape for a declared body over `COT_MAX_BODY_BYTES`.

    Django's own DATA_UPLOAD_MAX_MEMORY_SIZE only trips when a view reads the body, and
    answers 400; clients are promised 413, and a huge upload should not be read at all.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return json_error(400, "bad_request", "Content-Length is not a number.")
        limit = settings.COT_UPLOAD_BODY_LIMITS.get(request.path, settings.COT_MAX_BODY_BYTES)
        if length > limit:
            return json_error(
                413, "payload_too_large", f"Request body is larger than {limit} bytes."
            )
        return self.get_response(request)
