"""The OpenAPI description of the API (drf-spectacular, errors by drf-standardized-errors).

Where the schema classes live:
- here: the error shapes every operation shares, the schema class that adds them to each
  operation (`CotAutoSchema`), `conflict_response` for an operation's 409 codes,
  `cursor_page` for cursor-paginated lists, and the API-key authentication scheme;
- `<app>/api.py`: each view's `@extend_schema` (operation id, request, responses);
- `orders/schema.py`: documentation serializers that mirror the hand-built order and
  return bodies (`OrderOut`, `ReturnOut` build dicts for speed, so they describe nothing).

A new endpoint declares its operation id (`<tag>_<verb>`, the generated client's method
name), its request and success bodies, and its 409 codes; 400 (with the codes its input
can raise), 401, 403, 404, 406, 413, 415, 429, 500 and 503 are added here from what the
view is. Every enum gets a stable name in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].
The end-to-end suite validates every live /api/v1/ response against this schema.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import force_instance, is_serializer
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
)
from drf_standardized_errors.openapi import AutoSchema
from drf_standardized_errors.openapi_serializers import (
    ClientErrorEnum,
    ServerErrorEnum,
    ValidationErrorEnum,
)
from drf_standardized_errors.openapi_utils import (
    get_flat_serializer_fields,
    get_serializer_fields_with_error_codes,
)
from drf_standardized_errors.settings import package_settings
from inflection import camelize
from rest_framework import serializers
from rest_framework.authentication import BasicAuthentication

from core.authentication import ApiKeyAuthentication
from core.errors import error_body
from core.permissions import IsApiClient
from core.serializers import StrictSerializer
from core.webhooks import SIGNATURE_HEADER, SignedWebhookApi

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Components whose names end so keep their `code` enum inline: each operation's own set
# of codes, named after the operation by client generators (drf-standardized-errors'
# enum hook leaves them alone, so they never collide with one another).
INLINE_ENUM_SUFFIX = package_settings.ERROR_COMPONENT_NAME_SUFFIX


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "core.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>` as printed by `manage.py create_api_client`.",
        }


class StaffBasicAuthenticationScheme(OpenApiAuthenticationExtension):
    """DRF's HTTP Basic scheme, for its subclass that staff scripts use."""

    target_class = "core.authentication.StaffBasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "http", "scheme": "basic"}


# --- Error shapes ---------------------------------------------------------------------


class MalformedRequestCode(models.TextChoices):
    PARSE_ERROR = "parse_error"  # not JSON, nested too deeply, a lone surrogate
    BAD_REQUEST = "bad_request"  # e.g. a Content-Length that is not a number


class PayloadTooLargeCode(models.TextChoices):
    PAYLOAD_TOO_LARGE = "payload_too_large"


class RateLimitedCode(models.TextChoices):
    RATE_LIMITED = "rate_limited"


class ServiceUnavailableCode(models.TextChoices):
    SERVICE_UNAVAILABLE = "service_unavailable"


class BadSignatureCode(models.TextChoices):
    BAD_SIGNATURE = "bad_signature"


def _error_response(
    name: str,
    error_type: type[models.TextChoices],
    codes: type[models.TextChoices] | list[str],
    *,
    entry_name: str | None = None,
    attr_help: str = "Always null for this error.",
) -> type[serializers.Serializer]:
    """`{"type", "errors": [{"code", "detail", "attr"}]}` as the component `name`. The
    `code` enum is a named one for a TextChoices (entries `<name>Error`), else inline
    (entries `<entry_name>ErrorComponent`: an operation's own codes)."""
    if isinstance(codes, list):
        choices: Any = codes
        entry = f"{entry_name or name}{INLINE_ENUM_SUFFIX}"
    else:
        choices, entry = codes.choices, f"{name}Error"
    attr_field = serializers.CharField(allow_null=True, help_text=attr_help)

    class Entry(serializers.Serializer):
        code = serializers.ChoiceField(choices=choices)
        detail = serializers.CharField(help_text="For people; may change. Match on `code`.")
        attr = attr_field

        class Meta:
            ref_name = entry

    class Body(serializers.Serializer):
        type = serializers.ChoiceField(choices=error_type.choices)
        errors = Entry(many=True)

        class Meta:
            ref_name = name

    return Body


MalformedRequestResponse = _error_response(
    "MalformedRequest", ClientErrorEnum, MalformedRequestCode
)
PayloadTooLargeResponse = _error_response("PayloadTooLarge", ClientErrorEnum, PayloadTooLargeCode)
RateLimitedResponse = _error_response("RateLimited", ClientErrorEnum, RateLimitedCode)
ServiceUnavailableResponse = _error_response(
    "ServiceUnavailable", ServerErrorEnum, ServiceUnavailableCode
)
BadSignatureResponse = _error_response("BadSignature", ClientErrorEnum, BadSignatureCode)

ERROR_DESCRIPTIONS = {
    "400": "The request is malformed or names invalid values; nothing was written.",
    "401": "Missing or bad credentials.",
    "403": "These credentials may not do this.",
    "404": "No such object for this client (or a malformed cursor).",
    "406": "The Accept header asks for something other than JSON.",
    "409": "The request conflicts with the resource's state; nothing was written.",
    "413": "The body is over the size limit; it was not read.",
    "415": "The body is not JSON (or multipart where the operation takes it).",
    "429": "Over this API client's rate limit: retry after `Retry-After` seconds.",
    "500": "A bug: the X-Request-ID header finds its log lines.",
    "503": "A dependency (the database) is briefly unreachable: retry later.",
}
# Our bodies for these statuses (drf-standardized-errors' for the others).
ERROR_SCHEMAS = {
    "413": PayloadTooLargeResponse,
    "429": RateLimitedResponse,
    "503": ServiceUnavailableResponse,
}


def _example(name: str, status: int, error_type: str, code: str, detail: str) -> OpenApiExample:
    return OpenApiExample(
        name,
        value=error_body(error_type, code, detail),
        response_only=True,
        status_codes=[str(status)],
    )


ERROR_EXAMPLES = [
    _example("MalformedJson", 400, "client_error", "parse_error", "The body is not valid JSON."),
    _example(
        "PayloadTooLarge",
        413,
        "client_error",
        "payload_too_large",
        "Request body is larger than 1048576 bytes.",
    ),
    _example("RateLimited", 429, "client_error", "rate_limited", "Too many requests."),
    _example(
        "ServiceUnavailable",
        503,
        "server_error",
        "service_unavailable",
        "The service is briefly unavailable; retry later.",
    ),
]
BAD_SIGNATURE_EXAMPLE = _example(
    "BadSignature", 401, "client_error", "bad_signature", f"Missing or bad {SIGNATURE_HEADER}."
)


def conflict_response(operation_id: str, *codes: str) -> OpenApiResponse:
    """The 409 of one operation: the error shape with exactly these `code`s (our
    `core.errors.Conflict` uses)."""
    body = _error_response(f"{camelize(operation_id)}Conflict", ClientErrorEnum, sorted(codes))
    return OpenApiResponse(body, description=ERROR_DESCRIPTIONS["409"])


def validation_error_response(operation_id: str, codes: set[str]) -> type[serializers.Serializer]:
    """400 `validation_error`: one entry per bad field. `attr` is the field's dotted path
    with list positions (`items.0.quantity`), or an unknown field's name, so it is a
    string, not an enum; the codes are the ones this operation's input can raise."""
    return _error_response(
        f"{camelize(operation_id)}ValidationError",
        ValidationErrorEnum,
        sorted(codes),
        entry_name=f"{camelize(operation_id)}Validation",
        attr_help="The offending field, dotted for nesting and list positions "
        "(`items.0.quantity`); null when the error is about the whole body.",
    )


# --- Pagination -----------------------------------------------------------------------


class CursorPage(serializers.Serializer):
    """A page of the list; follow `next` for the rest."""

    next = serializers.URLField(
        allow_null=True, help_text="The next page's URL (with `cursor`); null on the last page."
    )
    previous = serializers.URLField(
        allow_null=True, help_text="The previous page's URL; null on the first page."
    )


def cursor_page(item: type[serializers.Serializer], name: str) -> type[CursorPage]:
    """`{"next", "previous", "results": [item]}` as the component `name`; the operation
    also gets the `cursor` and `page_size` query parameters and its 404."""

    class Page(CursorPage):
        results = item(many=True)

        class Meta:
            ref_name = name

    return Page


CURSOR_PARAMETERS = [
    OpenApiParameter(
        "cursor", OpenApiTypes.STR, description="From `next` or `previous`; 404 if malformed."
    ),
    OpenApiParameter(
        "page_size",
        OpenApiTypes.INT,
        description="Default 50, at most 200 (larger values are capped, invalid ones "
        "give the default).",
    ),
]


# --- The schema class -----------------------------------------------------------------

REQUEST_ID = OpenApiParameter(
    "X-Request-ID",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=True,
    required=True,
    description="The request's id (its own when it sent a sane one): on every log line.",
)
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[429],
    required=True,
    description="Seconds to wait before the next request.",
)
WWW_AUTHENTICATE = OpenApiParameter(
    "WWW-Authenticate",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[401],
    required=True,
    description="`Api-Key`: the scheme to authenticate with.",
)


class CotAutoSchema(AutoSchema):
    """drf-standardized-errors' schema class, adding what every operation of this API can
    answer (see the module docstring) through the hooks its documentation shows for
    custom statuses, a custom 400 and custom examples (`_should_add_error_response`,
    `_get_http400_serializer`, `_get_error_response_examples`, ...; the version is pinned)."""

    def get_tags(self) -> list[str]:
        # /api/v1/<tag>/...: the generated client's module for the operation.
        parts = [part for part in self.path.split("/") if part and not part.startswith("{")]
        return parts[2:3] if parts[:2] == ["api", "v1"] else parts[:1]

    def get_auth(self) -> list[dict[str, list[str]]]:
        # Channel endpoints take the API key only (a staff login is refused there), staff
        # endpoints a staff login only (a channel client is refused there).
        channel = self._authenticates_by_api_key()
        return [
            requirement
            for requirement in super().get_auth()
            if not requirement or ("ApiKeyAuth" in requirement) == channel
        ]

    def get_override_parameters(self) -> list[Any]:
        parameters: list[Any] = [REQUEST_ID]
        if self._authenticates_by_api_key():
            parameters.append(RETRY_AFTER)
        if self._has_authenticators():
            parameters.append(WWW_AUTHENTICATE)
        if self._is_cursor_paginated():
            parameters.extend(CURSOR_PARAMETERS)
        return parameters + super().get_override_parameters()

    # Which error statuses an operation gets (drf-standardized-errors asks per status).
    def _should_add_error_response(self, responses: dict, status_code: str) -> bool:
        if status_code in responses:
            return False
        if status_code == "401" and self._is_signed_webhook():
            return True
        if status_code in ("413", "415"):
            # A body too large is refused by the middleware before any view reads it.
            has_body = self.method in BODY_METHODS
            if status_code == "415":
                has_body = has_body and self.get_request_serializer() is not None
                # A failed staff login is recorded with the request's form data (the admin
                # login lock reads it), so a body that is not JSON is refused there too,
                # whatever the method.
                has_body = has_body or self._authenticates_staff_by_password()
            return has_body and super()._should_add_error_response(responses, status_code)
        if status_code == "429":
            return self._authenticates_by_api_key()
        return super()._should_add_error_response(responses, status_code)

    def _get_error_response_serializer(self, status_code: str) -> Any:
        if status_code == "401" and self._is_signed_webhook():
            serializer: Any = BadSignatureResponse
        else:
            serializer = ERROR_SCHEMAS.get(status_code) or super()._get_error_response_serializer(
                status_code
            )
        return OpenApiResponse(serializer, description=ERROR_DESCRIPTIONS.get(status_code, ""))

    def _get_error_response_examples(self) -> list[OpenApiExample]:
        # The library's examples, but ours where the status means something else here.
        ours = {"429"} | ({"401"} if self._is_signed_webhook() else set())
        examples = [
            example
            for example in super()._get_error_response_examples()
            if not ours.intersection(example.status_codes)
        ]
        if self._is_signed_webhook():
            examples.append(BAD_SIGNATURE_EXAMPLE)
        return examples + ERROR_EXAMPLES

    def _should_add_http404_error_response(self) -> bool:
        # Not the library's "any view, through ?format=": the API documents no such
        # parameter, so a client following the schema never meets that 404.
        has_path_parameters = "{" in self.path
        return has_path_parameters or self._is_cursor_paginated()

    def _should_add_validation_error_response(self) -> bool:
        return bool(self._validation_error_codes())

    def _get_http400_serializer(self) -> PolymorphicProxySerializer:
        variants: dict[str, Any] = {}
        if codes := self._validation_error_codes():
            variants[ValidationErrorEnum.VALIDATION_ERROR.value] = validation_error_response(
                self.get_operation_id(), codes
            )
        variants[ClientErrorEnum.CLIENT_ERROR.value] = MalformedRequestResponse
        return PolymorphicProxySerializer(
            component_name=f"{camelize(self.get_operation_id())}ErrorResponse400",
            serializers=variants,
            resource_type_field_name="type",
        )

    def _validation_error_codes(self) -> set[str]:
        """Every code a 400 `validation_error` of this operation may carry: the request
        body's and query serializer's fields' codes (as drf-standardized-errors finds
        them), `unknown_field` for strict inputs, and the codes the view declares with
        `extend_validation_errors` (raised by the view or its service)."""
        sources: list[Any] = []
        if self.method in BODY_METHODS:
            request = self.get_request_serializer()
            sources.extend(request.values() if isinstance(request, dict) else [request])
        # A query serializer given in `parameters` (exploded into query parameters).
        sources.extend(
            p for p in self.get_override_parameters() if not isinstance(p, OpenApiParameter)
        )
        fields = []
        for source in sources:
            if is_serializer(source):
                fields.extend(get_flat_serializer_fields(force_instance(source)))
        codes: set[str] = set()
        for field in get_serializer_fields_with_error_codes(fields):
            codes.update(field.error_codes)
        if any(isinstance(field.field, StrictSerializer) for field in fields):
            codes.add("unknown_field")
        for extra in self._get_extra_validation_errors().values():
            codes.update(extra)
        return codes

    def _is_signed_webhook(self) -> bool:
        return isinstance(self.view, SignedWebhookApi)

    def _has_authenticators(self) -> bool:
        return bool(self.view.get_authenticators())

    def _authenticates_staff_by_password(self) -> bool:
        return any(isinstance(a, BasicAuthentication) for a in self.view.get_authenticators())

    def _authenticates_by_api_key(self) -> bool:
        return any(
            isinstance(a, ApiKeyAuthentication) for a in self.view.get_authenticators()
        ) and any(isinstance(p, IsApiClient) for p in self.view.get_permissions())

    def _is_cursor_paginated(self) -> bool:
        responses = self.get_response_serializers()
        if not isinstance(responses, dict):
            responses = {"200": responses}
        for response in responses.values():
            if isinstance(response, OpenApiResponse):
                response = response.response
            if isinstance(force_instance(response), CursorPage):
                return True
        return False


# The header partners sign webhooks with, for the webhook operations' descriptions.
WEBHOOK_SIGNATURE_NOTE = (
    f"Authenticated by `{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the raw body>` "
    "with the partner's secret; a missing or bad signature is 401 `bad_signature`."
)
