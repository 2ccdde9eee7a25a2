import shutil
import subprocess
import time

import pytest
import redis
from rest_framework.test import APIClient

from conftest import free_port, stop_process

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


@pytest.fixture
def own_redis():
    """A redis-server of this test's own on a free port, so stopping it disturbs nobody."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (make test needs it anyway)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url, socket_timeout=0.5).ping()
            break
        except redis.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield proc, url
    stop_process(proc)


def test_readyz_turns_503_when_a_real_redis_stops(own_redis, settings):
    proc, url = own_redis
    settings.REDIS_URL = settings.CELERY_BROKER_URL = url
    assert APIClient().get("/readyz").status_code == 200

    proc.kill()
    proc.wait()
    response = APIClient().get("/readyz")

    assert response.status_code == 503
    assert response.json()["down"] == ["redis", "broker"]
    assert response.json()["checks"]["database"] == "ok"
    assert APIClient().get("/healthz").status_code == 200


def test_readyz_answers_in_time_when_a_check_hangs(settings, monkeypatch):
    from core import api

    monkeypatch.setattr(api, "READY_DEADLINE_SECONDS", 0.2)
    monkeypatch.setitem(api.CHECKS, "database", lambda: time.sleep(1))
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "down: timeout"
