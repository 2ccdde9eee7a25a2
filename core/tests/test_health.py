import pytest
from rest_framework.test import APIClient

from conftest import free_port

pytestmark = pytest.mark.django_db


def test_readyz_is_200_when_everything_answers():
    response = APIClient().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}


def test_readyz_is_503_naming_redis_when_it_is_down(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    assert "redis" in response.json()["down"]


def test_healthz_touches_nothing(settings, django_assert_num_queries):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    with django_assert_num_queries(0):
        assert APIClient().get("/healthz").status_code == 200
