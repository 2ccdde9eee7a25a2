"""The rate-limit throttle on its own, against the real Redis: who is counted, what 0
means, and a Redis that cannot be reached."""

from __future__ import annotations

import logging
import time

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from core.models import ApiClient
from core.ratelimits import ClientRequestThrottle, OrderPlacementThrottle
from core.tests.factories import ApiClientFactory

pytestmark = pytest.mark.django_db


def request_by(user, method: str = "get") -> Request:
    request = Request(getattr(APIRequestFactory(), method)("/api/v1/orders/"))
    request.user = user
    return request


def fresh_second() -> None:
    time.sleep(1 - time.time() % 1 + 0.01)


def counters() -> list[bytes]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        pattern = f"{settings.COT_REDIS_KEY_PREFIX}{settings.RATELIMIT_CACHE_PREFIX}*"
        return list(client.scan_iter(pattern))
    finally:
        client.close()


def allowed(throttle_class, request: Request, times: int) -> list[bool]:
    return [throttle_class().allow_request(request, None) for _ in range(times)]


def test_a_client_is_refused_past_its_limit_and_told_to_wait_a_second():
    client = ApiClientFactory(requests_per_second=2)
    fresh_second()
    throttle = ClientRequestThrottle()
    results = [throttle.allow_request(request_by(client), None) for _ in range(3)]
    assert results == [True, True, False]
    assert throttle.wait() == 1
    assert len(counters()) == 1  # one counter in Redis, under the run's key prefix


def test_staff_users_are_never_counted():
    staff = User(username="ops", is_staff=True)
    assert all(allowed(ClientRequestThrottle, request_by(staff), 150))
    assert counters() == []


def test_zero_means_no_limit_and_costs_no_redis_call():
    client = ApiClientFactory(requests_per_second=0, orders_per_second=0)
    assert all(allowed(ClientRequestThrottle, request_by(client), 150))
    assert all(allowed(OrderPlacementThrottle, request_by(client, "post"), 50))
    assert counters() == []


def test_the_placement_limit_counts_posts_only():
    client = ApiClientFactory(orders_per_second=1)
    fresh_second()
    assert all(allowed(OrderPlacementThrottle, request_by(client, "get"), 5))
    assert allowed(OrderPlacementThrottle, request_by(client, "post"), 2) == [True, False]


def test_an_unreachable_redis_lets_the_request_through_and_says_so(settings, caplog):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {**settings.CACHES["ratelimit"], "LOCATION": "redis://127.0.0.1:1/0"},
    }
    client: ApiClient = ApiClientFactory(requests_per_second=1)
    with caplog.at_level(logging.WARNING, logger="core.ratelimits"):
        assert all(allowed(ClientRequestThrottle, request_by(client), 3))
    assert "Redis unavailable" in caplog.text
