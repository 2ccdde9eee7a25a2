"""Every operation of /api/schema/, fuzzed by schemathesis in process (WSGI), with a
valid API key and without: never a 500, every error in the contract's shape and described
by the schema (its status, headers and body), and the database unchanged by every
rejected request. Bounded and deterministic (derandomized, a few dozen examples per
operation)."""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.e2e.live_schema import LiveSchema
from tests.hostile.test_hostile_bodies import counts

MAX_EXAMPLES = 25


def _openapi() -> dict:
    # The document /api/schema/ serves, built the same way (drf-spectacular).
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


SPEC = json.loads(json.dumps(_openapi(), default=str))
schema = schemathesis.openapi.from_dict(SPEC)
LIVE = LiveSchema(SPEC)


@pytest.fixture
def app(demo_catalog, simulator):
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from cot_project.wsgi import application

    # As Django's own test client does: the WSGI requests share the test's transaction,
    # which closing "old" connections at each request's end would destroy.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def key(demo_catalog):
    from core.tests.factories import BURST_LIMITS, ApiClientFactory, api_key_for

    # The examples of one operation come as fast as the app answers.
    return api_key_for(ApiClientFactory(**BURST_LIMITS))


def assert_contract_error(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"type", "errors"}, body
        for error in body["errors"]:
            assert {"code", "detail", "attr"} <= set(error), body


def assert_described_by_the_schema(case, response) -> None:
    """As the end-to-end suite checks live answers: status, headers and body declared."""
    answer = httpx.Response(
        response.status_code,
        headers=[(name, v) for name, values in response.headers.items() for v in values],
        content=response.content,
        request=httpx.Request(case.method, f"http://testserver{case.formatted_path}"),
    )
    problems = LIVE.errors(answer)
    assert not problems, (case.method, case.formatted_path, problems, response.content[:300])


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_500_contract_errors_and_nothing_written_on_rejection(case, app, key):
    for headers in ({"Authorization": f"Api-Key {key}"}, {}):
        before = counts()
        response = case.call(app=app, headers=headers)
        assert_contract_error(response)
        if case.method.upper() == case.operation.method.upper():
            # (Other methods are schemathesis' own probes: 405, which no operation has.)
            assert_described_by_the_schema(case, response)
        if response.status_code >= 400:
            assert counts() == before, (case.method, case.path, response.status_code)
