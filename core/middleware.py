"""Request middleware: the request id and its log line, and oversized bodies refused
before anything reads them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core import metrics
from core.errors import json_error
from core.logs import REQUEST_ID_HEADER, log_context_bind, log_context_reset, request_id_accept

logger = logging.getLogger("cot.request")
# Probed every few seconds: logged at DEBUG, so they do not drown the orders.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestContextMiddleware:
    """Gives every request an id (the client's `X-Request-ID` when it is sane), binds it to
    the log context for everything the request logs (and the tasks it sends), returns it
    in the response header, writes one log line per request, and counts 400s and 500s in
    `cot_errors_total`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_accept(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        token = log_context_bind(request_id=request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            if response.status_code == 400:
                metrics.error_count(metrics.VALIDATION_ERROR)
            elif response.status_code >= 500:
                metrics.error_count(metrics.UNKNOWN_ERROR)
            logger.log(
                logging.DEBUG if request.path in QUIET_PATHS else logging.INFO,
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            return response
        finally:
            log_context_reset(token)


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
