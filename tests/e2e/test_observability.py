"""Operations, end to end: /metrics adds up every process (two gunicorn workers, a prefork
Celery worker with four children), and a real worker's log lines name the order."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.tests.factories import metrics_auth
from orders.tests.factories import ORDER_BODY

pytestmark = pytest.mark.e2e
PIPELINE_STEPS = {"prescription", "stock", "payment_prepare", "charge", "shipment", "confirm"}


def body(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(ORDER_BODY)
    data["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
    data.update(changes)
    return data


def scrape(stack) -> str:
    response = httpx.get(f"{stack.api_url}/metrics", auth=metrics_auth(), timeout=10.0)
    assert response.status_code == 200
    return response.text


def samples(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def settled_metrics(stack) -> str:
    """/metrics once no order is in flight, so earlier tests' orders cannot land mid-count."""
    deadline = time.monotonic() + 60
    while True:
        text = scrape(stack)
        if samples(text, "cot_orders_in_flight") == 0:
            return text
        assert time.monotonic() < deadline, "orders of earlier tests still in flight"
        time.sleep(0.2)


def test_orders_done_in_worker_children_are_counted_exactly_once(stack):
    before = settled_metrics(stack)
    confirmed, declined = 5, 2
    with stack.client("mobile") as client:
        ids = [client.post("/api/v1/orders/", json=body()).json()["id"] for _ in range(confirmed)]
        ids += [
            client.post("/api/v1/orders/", json=body(payment_token="tok_decline")).json()["id"]
            for _ in range(declined)
        ]
        statuses = [stack.wait_for(client, order_id)["status"] for order_id in ids]
    assert statuses == ["confirmed"] * confirmed + ["payment_failed"] * declined

    # The last counter is incremented just after the order's commit, which the GET above
    # may see first: wait until the count arrives, then it must be exact.
    deadline = time.monotonic() + 30
    while True:
        after = settled_metrics(stack)
        counted = samples(after, "cot_orders_total", channel="mobile")
        if counted - samples(before, "cot_orders_total", channel="mobile") >= len(ids):
            break
        assert time.monotonic() < deadline, "cot_orders_total did not reach the orders placed"
        time.sleep(0.2)

    def delta(name: str, **labels: str) -> float:
        return samples(after, name, **labels) - samples(before, name, **labels)

    assert delta("cot_orders_total", channel="mobile") == confirmed + declined
    assert delta("cot_orders_total", channel="mobile", status="confirmed") == confirmed
    assert delta("cot_orders_total", channel="mobile", status="payment_failed") == declined
    assert delta("cot_order_duration_seconds_count") == confirmed
    assert delta("cot_errors_total", error_type="payment_error") == declined
    assert delta("cot_revenue_total") == confirmed * 60
    assert samples(after, "cot_orders_in_flight") == 0
    # django-prometheus' own request metrics come from the gunicorn workers' files.
    assert samples(after, "django_http_requests_total_by_method_total", method="POST") > 0


def test_metrics_output_passes_promtool(stack):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus); CI installs it")
    with stack.client() as client:
        client.post("/api/v1/orders/", json=body(items=[{"sku": "PARA-500", "quantity": 0}]))
    text = settled_metrics(stack)
    for name in ("cot_orders_in_flight", "cot_errors_total", "cot_order_duration_seconds_bucket"):
        assert name in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The stack runs with METRICS_BASIC_AUTH set: without its credentials, no metrics.
    refused = httpx.get(f"{stack.api_url}/metrics", auth=("prometheus", "wrong"), timeout=10.0)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic ")


def _log_lines(path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def test_worker_log_lines_carry_the_order_and_the_request_id(stack):
    request_id = f"e2e-{uuid.uuid4().hex}"
    with stack.client() as client:
        response = client.post("/api/v1/orders/", json=body(), headers={"X-Request-ID": request_id})
        assert response.status_code == 202
        assert response.headers["X-Request-ID"] == request_id
        order_id = response.json()["id"]
        assert stack.wait_for(client, order_id)["status"] == "confirmed"

    deadline = time.monotonic() + 30
    while True:
        mine = [
            l for l in _log_lines(stack.log_dir / "worker.log") if l.get("order_id") == order_id
        ]
        if {l.get("step") for l in mine} >= PIPELINE_STEPS:
            break
        assert time.monotonic() < deadline, f"worker logged only {mine}"
        time.sleep(0.2)
    for line in mine:
        assert line["request_id"] == request_id, line
        assert line["task"].startswith(("orders.", "notifications.")), line
    step_lines = [l for l in mine if l.get("step")]
    assert {l["task"] for l in step_lines} >= {"orders.charge_payment", "orders.confirm_order"}

    api = [l for l in _log_lines(stack.log_dir / "api.log") if l.get("request_id") == request_id]
    assert any(l.get("order_id") == order_id and l.get("status") == 202 for l in api), api
