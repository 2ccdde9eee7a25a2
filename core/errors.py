"""Errors in the contract's shape: `{"type", "errors": [{"code", "detail", "attr"}]}`.

drf-standardized-errors produces that shape for every DRF view; the views here give the
same shape to what never reaches DRF (unknown URLs, oversized bodies, crashes).
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
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


class CotExceptionHandler(ExceptionHandler):
    def convert_known_exceptions(self, exc: Exception) -> Exception:
        if isinstance(exc, RequestDataTooBig):
            return PayloadTooLarge()
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
    return json_error(500, "error", "A server error occurred.")


def bad_request_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(400, "bad_request", "Bad request.")


def permission_denied_view(
    request: HttpRequest, exception: Exception | None = None
) -> JsonResponse:
    return json_error(403, "permission_denied", "You do not have permission.")
