"""Every /api/v1/ answer an end-to-end test receives is checked against the schema the
live server publishes (`/api/schema/`): its status is declared for the operation, its
declared headers are there and well-formed, its body matches field by field. openapi-core
does the checking; the schema is fetched and compiled once per test session.

The check is stricter than the published schema on one point: an object may not carry
properties the schema does not name (the published schema leaves them open, so that
clients keep working when answers grow). That is what keeps the documentation
serializers (orders/schema.py) in step with the bodies the code builds.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.exceptions import OpenAPIError
from werkzeug.datastructures import Headers, ImmutableMultiDict

CHECKED_PREFIX = "/api/v1/"


class SchemaMismatch(AssertionError):
    """A live answer the schema does not describe."""


class _OpenApiRequest:
    """openapi-core's request protocol over the httpx request that got the answer (only
    what finds the operation: the body is not checked)."""

    def __init__(self, request: httpx.Request) -> None:
        url = request.url
        self.host_url = f"{url.scheme}://{url.netloc.decode()}"
        self.path = url.path
        self.method = request.method.lower()
        self.body = None
        self.content_type = request.headers.get("Content-Type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(url.query.decode())),
            header=Headers(request.headers.multi_items()),
            cookie=ImmutableMultiDict(),
        )


class _OpenApiResponse:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.content_type = response.headers.get("Content-Type", "")
        self.headers = Headers(response.headers.multi_items())
        self.data = response.content


def _closed_objects(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with every object that lists its properties closed to others."""
    spec = copy.deepcopy(spec)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(spec.get("components", {}))
    return spec


class LiveSchema:
    """The live schema, compiled; `check` is an httpx response hook."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.openapi = OpenAPI.from_dict(_closed_objects(spec))

    @classmethod
    def fetch(cls, api_url: str) -> LiveSchema:
        response = httpx.get(
            f"{api_url}/api/schema/",
            headers={"Accept": "application/vnd.oai.openapi+json"},
            timeout=30,
        )
        response.raise_for_status()
        return cls(response.json())

    def errors(self, response: httpx.Response) -> list[str]:
        """What is wrong with `response` (nothing: [])."""
        try:
            self.openapi.validate_response(
                _OpenApiRequest(response.request), _OpenApiResponse(response)
            )
        except OpenAPIError as exc:
            return list(_describe(exc))
        return []

    def check(self, response: httpx.Response) -> None:
        if not response.request.url.path.startswith(CHECKED_PREFIX):
            return
        response.read()
        problems = self.errors(response)
        if problems:
            request = response.request
            raise SchemaMismatch(
                f"{request.method} {request.url.path} answered {response.status_code}, "
                "which the published schema (/api/schema/) does not describe:\n  "
                + "\n  ".join(problems)
                + f"\nbody: {response.text[:2000]}"
            )


def _describe(exc: BaseException) -> Iterator[str]:
    cause = exc.__cause__
    schema_errors = list(getattr(cause, "schema_errors", None) or [])
    if not schema_errors:
        yield f"{type(exc).__name__}: {exc}"
        return
    for error in schema_errors:
        where = "/".join(str(part) for part in getattr(error, "absolute_path", [])) or "(body)"
        message = getattr(error, "message", str(error))
        yield f"{type(exc).__name__} at {where}: {message}"
        # oneOf/anyOf: say why no branch fitted.
        for sub in getattr(error, "context", None) or []:
            sub_where = "/".join(str(part) for part in sub.absolute_path) or "(body)"
            yield f"    at {sub_where}: {sub.message}"
