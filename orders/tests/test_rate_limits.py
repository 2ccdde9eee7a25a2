"""Per-client rate limits over HTTP in-process, counted in the real Redis: 429 in the
error shape with Retry-After, per client, replays included, placements apart from requests."""

from __future__ import annotations

import copy
import json
import time

import pytest
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from orders.models import Order
from orders.tests.factories import ORDER_BODY

pytestmark = pytest.mark.django_db
URL = "/api/v1/orders/"


def fresh_second() -> None:
    """Wait for the clock's next whole second: limits count per second of the clock, and a
    test's few requests must fall into one such window."""
    time.sleep(1 - time.time() % 1 + 0.01)


def client_with(**limits: int) -> tuple[str, str]:
    client = ApiClientFactory(**limits)
    return client.name, api_key_for(client)


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def place(key: str, customer_id: str = "C-1001", **headers: str):
    body = copy.deepcopy(ORDER_BODY)
    body["customer_id"] = customer_id
    return api(key).post(URL, data=json.dumps(body), content_type="application/json", **headers)


def limited(client: str, limit: str) -> float:
    return (
        REGISTRY.get_sample_value("cot_rate_limited_total", {"client": client, "limit": limit}) or 0
    )


def assert_rate_limited(response) -> int:
    """The 429 of the contract; returns its Retry-After."""
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["type"] == "client_error"
    assert [(e["code"], e["attr"]) for e in body["errors"]] == [("rate_limited", None)]
    assert body["errors"][0]["detail"].startswith("Too many requests for this API client.")
    retry_after = int(response["Retry-After"])
    assert retry_after >= 1
    return retry_after


def test_over_the_request_limit_is_429_with_retry_after_and_a_second_client_goes_on(
    demo_catalog,
):
    name, key = client_with(requests_per_second=3)
    _, other_key = client_with(requests_per_second=3)
    before = limited(name, "requests")
    fresh_second()
    answers = [api(key).get(URL) for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    retry_after = assert_rate_limited(answers[3])
    # Another client's count is its own, in the same second.
    assert [api(other_key).get(URL).status_code for _ in range(3)] == [200, 200, 200]
    assert limited(name, "requests") == before + 1

    time.sleep(retry_after)  # backing off as told is enough
    assert api(key).get(URL).status_code == 200


def test_an_idempotent_replay_counts_429_over_the_limit_the_original_order_under_it(
    demo_catalog,
):
    _, key = client_with(orders_per_second=2)
    fresh_second()
    first = place(key, HTTP_IDEMPOTENCY_KEY="rl-replay")
    replay = place(key, HTTP_IDEMPOTENCY_KEY="rl-replay")
    over = place(key, HTTP_IDEMPOTENCY_KEY="rl-replay")

    assert first.status_code == 202, first.content
    assert replay.status_code == 202, replay.content
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    retry_after = assert_rate_limited(over)
    assert "Idempotent-Replayed" not in over
    assert Order.objects.count() == 1

    time.sleep(retry_after)
    again = place(key, HTTP_IDEMPOTENCY_KEY="rl-replay")
    assert again.status_code == 202, again.content
    assert again.json()["id"] == first.json()["id"]
    assert Order.objects.count() == 1


def test_the_placement_limit_is_counted_apart_from_the_request_limit(demo_catalog):
    name, key = client_with(orders_per_second=1, requests_per_second=5)
    orders_before, requests_before = limited(name, "orders"), limited(name, "requests")
    fresh_second()
    assert place(key, "C-1").status_code == 202  # request 1, placement 1
    assert_rate_limited(place(key, "C-2"))  # request 2, placement 2: over 1/s
    # Reading goes on: the placements limit does not stop the client's other requests.
    assert [api(key).get(URL).status_code for _ in range(3)] == [200, 200, 200]  # 3, 4, 5
    # The request limit counts every request, placements included: the 6th is over 5/s.
    assert_rate_limited(api(key).get(URL))
    assert Order.objects.filter(customer_id="C-2").count() == 0
    assert limited(name, "orders") == orders_before + 1
    assert limited(name, "requests") == requests_before + 1


def test_with_redis_unreachable_requests_go_through_unlimited(demo_catalog, settings):
    # As order intake does with the broker down: the limiter fails open (core/ratelimits.py).
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {**settings.CACHES["ratelimit"], "LOCATION": "redis://127.0.0.1:1/0"},
    }
    _, key = client_with(orders_per_second=1, requests_per_second=1)
    assert [place(key, f"C-{n}").status_code for n in range(2)] == [202, 202]
    assert api(key).get(URL).status_code == 200
