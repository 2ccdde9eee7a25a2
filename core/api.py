"""Liveness, readiness and metrics: what load balancers, orchestrators and Prometheus ask."""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from concurrent.futures import ThreadPoolExecutor, wait

import prometheus_client
import redis
from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import multiprocess

from core import metrics as cot_metrics
from core.errors import json_error
from core.sql import database_ping

PROBE_TIMEOUT_SECONDS = 1.0
# Checks run side by side, and /readyz answers within this even if one of them hangs
# (a pool waiting for a free connection, a black-holed host).
READY_DEADLINE_SECONDS = 2.0
_probes = ThreadPoolExecutor(max_workers=6, thread_name_prefix="readyz")


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up. Touches nothing else, so a slow database never restarts it."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    # Runs in a probe thread: its connection is that thread's own, given back at the end.
    try:
        database_ping(timeout_seconds=PROBE_TIMEOUT_SECONDS)
    finally:
        connection.close()


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
    with current_app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT_SECONDS)


CHECKS = {"database": _check_database, "redis": _check_redis, "broker": _check_broker}


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, Redis and broker reachable: 200; else 503 naming what is down."""
    futures = {name: _probes.submit(check) for name, check in CHECKS.items()}
    wait(futures.values(), timeout=READY_DEADLINE_SECONDS)
    results: dict[str, str] = {}
    for name, future in futures.items():
        if not future.done():
            future.cancel()
            results[name] = "down: timeout"
        elif (exc := future.exception()) is not None:
            # any failure means "not ready", whatever raised it
            results[name] = f"down: {type(exc).__name__}"
        else:
            results[name] = "ok"
    down = [name for name, result in results.items() if result != "ok"]
    return JsonResponse(
        {"status": "down" if down else "ok", "down": down, "checks": results},
        status=503 if down else 200,
    )


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format: every process's counters and histograms (the multiprocess
    directory, or this process's registry when there is none), django-prometheus' request
    and database metrics among them, plus the scrape-time collectors. Behind HTTP basic
    auth when METRICS_BASIC_AUTH (`user:password`) is set."""
    if not metrics_credentials_valid(request):
        response = json_error(
            401, "not_authenticated", "/metrics needs the METRICS_BASIC_AUTH credentials."
        )
        response["WWW-Authenticate"] = 'Basic realm="metrics", charset="UTF-8"'
        return response
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


def metrics_credentials_valid(request: HttpRequest) -> bool:
    """True when /metrics is open (no METRICS_BASIC_AUTH) or the request's basic-auth
    `user:password` is the configured one, compared in constant time."""
    expected = settings.METRICS_BASIC_AUTH
    if not expected:
        return True
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected.encode())
