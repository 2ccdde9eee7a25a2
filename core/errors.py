"""Errors in the contract's shape: `{"type", "errors": [{"code", "detail", "attr"}]}`.

drf-standardized-errors produces that shape for every DRF view; the views here give the
same shape to what never reaches DRF (unknown URLs, oversized bodies, crashes).
"""

from __future__ import annotations

import logging
import sys

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from drf_standardized_errors.handler import ExceptionHandler
from rest_framework import exceptions, status


class Conflict(exceptions.APIException):
    """409: the request is well-formed but conflicts with the resource's state."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is larger than the limit."
    default_code = "payload_too_large"


class RateLimited(exceptions.Throttled):
    """429: the API client is over one of its rate limits (core.ratelimits)."""

    default_detail = "Too many requests for this API client."
    default_code = "rate_limited"


logger = logging.getLogger(__name__)

# The database refused or dropped the connection (restarting, failing over, out of
# connections): nothing this request did is at fault and a retry soon may succeed. A
# query that merely fails (a bug) raises other DatabaseErrors and stays a 500.
DEPENDENCY_DOWN = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


class ServiceUnavailable(exceptions.APIException):
    """503: a dependency is down; the request changed nothing that will not be rolled back."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The service is briefly unavailable; retry later."
    default_code = "service_unavailable"

    def __init__(self) -> None:
        super().__init__()
        self.wait = RETRY_AFTER_SECONDS  # sent as Retry-After


class CotExceptionHandler(ExceptionHandler):
    def convert_known_exceptions(self, exc: Exception) -> Exception:
        if isinstance(exc, RequestDataTooBig):
            return PayloadTooLarge()
        if isinstance(exc, DEPENDENCY_DOWN):
            logger.warning("database unavailable: %s", exc)
            return ServiceUnavailable()
        if isinstance(exc, exceptions.Throttled) and not isinstance(exc, RateLimited):
            # DRF raises its own Throttled for every throttle; clients are promised
            # `rate_limited`, with Retry-After (in whole seconds, from `wait`).
            return RateLimited(wait=exc.wait)
        return super().convert_known_exceptions(exc)


def error_body(error_type: str, code: str, detail: str, attr: str | None = None) -> dict:
    return {"type": error_type, "errors": [{"code": code, "detail": detail, "attr": attr}]}


def json_error(status_code: int, code: str, detail: str) -> JsonResponse:
    error_type = "client_error" if status_code < 500 else "server_error"
    return JsonResponse(error_body(error_type, code, detail), status=status_code)


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(404, "not_found", "Not found.")


def server_error_view(request: HttpRequest) -> JsonResponse:
    # Django calls this inside its `except` block, so the exception is at hand: a database
    # outage outside DRF (middleware, admin) is a 503 too, not a crash.
    if isinstance(sys.exc_info()[1], DEPENDENCY_DOWN):
        response = json_error(503, "service_unavailable", ServiceUnavailable.default_detail)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return json_error(500, "error", "A server error occurred.")


def bad_request_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(400, "bad_request", "Bad request.")


def permission_denied_view(
    request: HttpRequest, exception: Exception | None = None
) -> JsonResponse:
    return json_error(403, "permission_denied", "You do not have permission.")
