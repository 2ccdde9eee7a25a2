"""/metrics in-process: scrape-time collectors, and what counts errors."""

import pytest
from celery import shared_task
from django.http import HttpResponse
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from rest_framework.test import APIClient

from core import metrics
from core.middleware import RequestContextMiddleware
from core.tests.factories import ApiClientFactory, api_key_for

pytestmark = pytest.mark.django_db


def errors(error_type):
    return REGISTRY.get_sample_value("cot_errors_total", {"error_type": error_type}) or 0


def test_registered_collectors_are_served(db):
    class Answer:
        def collect(self):
            yield GaugeMetricFamily("cot_test_answer", "A test gauge.", value=42)

    metrics.collector_register("test_answer", Answer())
    try:
        assert "cot_test_answer 42.0" in APIClient().get("/metrics").content.decode()
    finally:
        metrics._collectors.pop("test_answer")


def test_a_400_counts_a_validation_error(db):
    before = errors("validation_error")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(ApiClientFactory())}")
    assert api.post("/api/v1/orders/", data={}, format="json").status_code == 400
    assert errors("validation_error") == before + 1


def test_a_500_counts_an_unknown_error(rf):
    before = errors("unknown_error")
    middleware = RequestContextMiddleware(lambda request: HttpResponse(status=500))
    response = middleware(rf.get("/anything"))
    assert response.status_code == 500 and response["X-Request-ID"]
    assert errors("unknown_error") == before + 1


@shared_task(name="tests.explodes")
def explodes():
    raise ValueError("boom")


def test_a_task_that_fails_outright_counts_an_unknown_error(db):
    before = errors("unknown_error")
    result = explodes.apply()
    assert result.failed()
    assert errors("unknown_error") == before + 1
