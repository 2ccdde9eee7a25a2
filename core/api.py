"""Liveness, readiness and metrics: what load balancers, orchestrators and Prometheus ask."""

from __future__ import annotations

import os

import prometheus_client
import redis
from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import multiprocess

from core import metrics as cot_metrics

PROBE_TIMEOUT_SECONDS = 1.0


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up. Touches nothing else, so a slow database never restarts it."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=PROBE_TIMEOUT_SECONDS,
        socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()


def _check_broker() -> None:
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT_SECONDS)


CHECKS = {"database": _check_database, "redis": _check_redis, "broker": _check_broker}


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, Redis and broker reachable: 200; else 503 naming what is down."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready", whatever raised it
            results[name] = f"down: {type(exc).__name__}"
    down = [name for name, result in results.items() if result != "ok"]
    return JsonResponse(
        {"status": "down" if down else "ok", "down": down, "checks": results},
        status=503 if down else 200,
    )


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format: every process's counters and histograms (the multiprocess
    directory, or this process's registry when there is none), django-prometheus' request
    and database metrics among them, plus the scrape-time collectors."""
    registry = prometheus_client.CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(cot_metrics.RegistryCollector(prometheus_client.REGISTRY))
    for collector in cot_metrics.collectors():
        registry.register(collector)
    return HttpResponse(
        prometheus_client.generate_latest(registry),
        content_type=prometheus_client.CONTENT_TYPE_LATEST,
    )
