"""Cost of one `POST /api/v1/orders/` in the API process: statements and CPU per request.

Calls the WSGI application in this process (production settings, middleware and logging;
the log lines go to /dev/null) against a migrated scratch database:

    DATABASE_URL=postgres://…/a_migrated_scratch_db REDIS_URL=redis://…/N \
        .venv/bin/python scripts/intake_profile.py [-n 500] [--key] [--replay]
        [--no-enqueue] [--profile [--sort tottime]] [-v]

`--key` sends a fresh Idempotency-Key with every order, `--replay` re-sends one order
with the same key (the replay path). `--no-enqueue` replaces the pipeline start (one
Celery publish to Redis) with nothing, to see the API's own share. `-v` prints the
statements of one request. CPU is process time per request over batches of 25, the
fastest and the median batch (the machine is shared); `--profile` (CPU-time cProfile)
adds Python function calls per request, a deterministic figure to compare versions
with. It loads a small catalog (BENCH-* products) and an API client
named `intake-profile` into that database: use a scratch one. Each run leaves its orders
(and, without --no-enqueue, its pipeline messages in that Redis database) behind.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cot_project.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("COT_LOG_FORMAT", "json")
BATCH = 25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="orders to time (default 500)")
    parser.add_argument("--key", action="store_true", help="an Idempotency-Key on every order")
    parser.add_argument("--replay", action="store_true", help="time replays of one order")
    parser.add_argument("--no-enqueue", action="store_true", help="skip the Celery publish")
    parser.add_argument("--profile", action="store_true", help="cProfile the timed requests")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key")
    parser.add_argument("-v", action="store_true", help="print one request's statements")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench import load
    from core.models import ApiClient, ClientAPIKey
    from cot_project.wsgi import application

    # The production log lines are formatted and written, to nowhere.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as we do)

    with tempfile.NamedTemporaryFile("w", suffix=".json") as catalog:
        json.dump(load.catalog(), catalog)
        catalog.flush()
        call_command("load_catalog", catalog.name, verbosity=0)
    client, _ = ApiClient.objects.get_or_create(name="intake-profile", defaults={"channel": "web"})
    _, api_key = ClientAPIKey.objects.create_key(name="intake-profile", client=client)
    connection.close()

    rng = random.Random(1)
    replay_body = json.dumps(load.order_body("replay", rng)).encode()
    replay_key = uuid.uuid4().hex

    def post() -> int:
        if args.replay:
            body, key = replay_body, replay_key
        else:
            body = json.dumps(load.order_body(f"p-{rng.random()}", rng)).encode()
            key = uuid.uuid4().hex if args.key else None
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/api/v1/orders/",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Api-Key {api_key}",
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        if key:
            environ["HTTP_IDEMPOTENCY_KEY"] = key
        status: list[str] = []
        chunks = application(environ, lambda s, headers, exc_info=None: status.append(s))
        b"".join(chunks)
        chunks.close()
        return int(status[0].split()[0])

    patch = mock.patch("orders.pipeline.start") if args.no_enqueue else mock.MagicMock()
    with patch:
        for _ in range(20):  # warm up: imports, caches, the connection pool, the broker
            assert post() == 202
        statements = []
        for i in range(5):
            with CaptureQueriesContext(connection) as queries:
                assert post() == 202
            statements.append(len(queries.captured_queries))
            if args.v and i == 0:
                for query in queries.captured_queries:
                    print("   ", query["sql"][:160])
        # CPU time, not wall time: waiting on PostgreSQL or Redis costs the worker no CPU.
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        # In batches: on a busy machine the fastest batches are the least disturbed.
        batches: list[float] = []
        wall = time.perf_counter()
        if profiler:
            profiler.enable()
        for start in range(0, args.n, BATCH):
            size = min(BATCH, args.n - start)
            cpu = time.process_time()
            for _ in range(size):
                assert post() == 202
            batches.append((time.process_time() - cpu) * 1000 / size)
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - wall
    batches.sort()
    print(
        f"statements per request: {statements}; CPU ms per request: "
        f"min batch {batches[0]:.2f}, median batch {batches[len(batches) // 2]:.2f}; "
        f"wall {wall * 1000 / args.n:.2f} ms (n={args.n}{', profiled' if profiler else ''})"
    )
    if profiler:
        stats = pstats.Stats(profiler)
        # Deterministic, unlike CPU time on a shared machine: a proxy to compare versions.
        print(f"Python function calls per request: {stats.total_calls / args.n:.0f}")
        stats.sort_stats(args.sort).print_stats(45)


if __name__ == "__main__":
    main()
