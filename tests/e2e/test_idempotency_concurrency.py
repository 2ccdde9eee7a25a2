"""Idempotency-Key under real concurrency, against the live API server (gunicorn)."""

from __future__ import annotations

import copy
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from orders.tests.factories import ORDER_BODY

pytestmark = pytest.mark.e2e
N = 50


def test_fifty_simultaneous_identical_requests_make_one_order(stack, django_db_blocker):
    from orders.models import Order

    body = copy.deepcopy(ORDER_BODY)
    body["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
    key = f"idem-{uuid.uuid4()}"
    start = threading.Barrier(N)
    headers = {"Authorization": f"Api-Key {stack.keys['web']}", "Idempotency-Key": key}

    def one(_: int) -> httpx.Response:
        with stack.client(None, headers=headers, timeout=30) as client:
            start.wait()  # every request leaves at once
            return client.post("/api/v1/orders/", json=body)

    with ThreadPoolExecutor(N) as pool:
        answers = list(pool.map(one, range(N)))

    accepted = [a for a in answers if a.status_code == 202]
    in_progress = [a for a in answers if a.status_code == 409]
    assert len(accepted) + len(in_progress) == N, [a.text for a in answers]
    assert {a.json()["errors"][0]["code"] for a in in_progress} <= {"request_in_progress"}
    assert len({a.json()["id"] for a in accepted}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in accepted) == (
        len(accepted) - 1
    )
    with django_db_blocker.unblock():
        assert Order.objects.filter(idempotency_key=key).count() == 1

    changed = {**body, "payment_token": "tok_decline"}
    with stack.client(None, headers=headers) as client:
        reused = client.post("/api/v1/orders/", json=changed)
    assert reused.status_code == 409
    assert reused.json()["errors"][0]["code"] == "idempotency_key_reused"
    with django_db_blocker.unblock():
        assert Order.objects.filter(idempotency_key=key).count() == 1
