"""Order metrics in-process: the contract's names, the in-flight gauge, errors by ending."""

import pytest
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, metrics_auth_header
from orders.enums import OrderStatus
from orders.services.transitions import order_transition
from orders.tests.factories import place_order

pytestmark = pytest.mark.django_db


def errors(error_type):
    return REGISTRY.get_sample_value("cot_errors_total", {"error_type": error_type}) or 0


def test_metrics_serve_the_contract_names_and_the_in_flight_gauge(demo_catalog):
    client = ApiClientFactory()
    place_order(client, items=[("PARA-500", 1)])
    ended = place_order(client, items=[("PARA-500", 1)])
    order_transition(order=ended, to=OrderStatus.REJECTED, failure_reason="out_of_stock")

    response = APIClient().get("/metrics", **metrics_auth_header())

    assert response.status_code == 200
    text = response.content.decode()
    assert "\ncot_orders_in_flight 1.0\n" in text
    for name in (
        "cot_orders_total",
        "cot_order_duration_seconds_bucket",
        "cot_revenue_total",
        'cot_errors_total{error_type="unknown_error"}',
        "cot_pipeline_step_seconds",
        "django_http_requests_total_by_method_total",
    ):
        assert name in text, name


@pytest.mark.parametrize(
    ("status", "reason", "error_type"),
    [
        (OrderStatus.PAYMENT_FAILED, "payment_declined", "payment_error"),
        (OrderStatus.CANCELLED, "fulfilment_unavailable", "fulfilment_error"),
    ],
)
def test_orders_ending_in_payment_or_fulfilment_trouble_count_errors(
    demo_catalog, django_capture_on_commit_callbacks, status, reason, error_type
):
    order = place_order(ApiClientFactory(), items=[("PARA-500", 1)])
    before = errors(error_type)
    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order=order, to=status, failure_reason=reason)
    assert errors(error_type) == before + 1
