"""/metrics in-process: scrape-time collectors, and what counts errors."""

import base64

import pytest
from celery import shared_task
from django.http import HttpResponse
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from rest_framework.test import APIClient

from core import metrics
from core.middleware import RequestContextMiddleware
from core.tests.factories import ApiClientFactory, api_key_for, metrics_auth_header

pytestmark = pytest.mark.django_db


def errors(error_type):
    return REGISTRY.get_sample_value("cot_errors_total", {"error_type": error_type}) or 0


def test_registered_collectors_are_served(db):
    class Answer:
        def collect(self):
            yield GaugeMetricFamily("cot_test_answer", "A test gauge.", value=42)

    metrics.collector_register("test_answer", Answer())
    try:
        assert (
            "cot_test_answer 42.0"
            in APIClient().get("/metrics", **metrics_auth_header()).content.decode()
        )
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


def test_metrics_ask_for_the_configured_basic_auth(settings):
    settings.METRICS_BASIC_AUTH = "scraper:s3cret:with-colon"
    client = APIClient()

    def basic(credentials: bytes) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials).decode()}

    for refused in (
        {},
        basic(b"scraper:wrong"),
        basic(b"scraper:s3cret"),
        {"HTTP_AUTHORIZATION": "Basic not-base64!"},
        {"HTTP_AUTHORIZATION": "Bearer scraper:s3cret:with-colon"},
    ):
        response = client.get("/metrics", **refused)
        assert response.status_code == 401, refused
        assert response["WWW-Authenticate"].startswith("Basic ")
        assert response.json()["errors"][0]["code"] == "not_authenticated"
    response = client.get("/metrics", **basic(b"scraper:s3cret:with-colon"))
    assert response.status_code == 200
    assert "cot_errors_total" in response.content.decode()

    settings.METRICS_BASIC_AUTH = ""  # unset: open, as on a private network
    assert client.get("/metrics").status_code == 200
