"""Queries per pipeline step, for docs/BENCHMARKS.md: places one order and runs each step
inline under Django's CaptureQueriesContext, against a live simulator.

    DATABASE_URL=postgres://…/a_migrated_scratch_db REDIS_URL=redis://…/N \
        .venv/bin/python scripts/step_queries.py [-v]

It loads a small catalog (BENCH-* products) and an API client named `step-queries` into
that database: use a scratch one. `-v` prints every statement.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cot_project.settings")


def main() -> None:
    port = "8597"
    simulator = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "simulator", "--port", port], cwd=ROOT
    )
    os.environ["SIMULATOR_URL"] = f"http://127.0.0.1:{port}"
    try:
        time.sleep(1.5)
        run(verbose="-v" in sys.argv)
    finally:
        simulator.terminate()


def run(*, verbose: bool) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench import load
    from core.models import ApiClient
    from orders.pipeline import INLINE_STEPS
    from orders.services.placement import ItemRequest, order_place

    with tempfile.NamedTemporaryFile("w", suffix=".json") as catalog:
        json.dump(load.catalog(10), catalog)
        catalog.flush()
        call_command("load_catalog", catalog.name, verbosity=0)
    client, _ = ApiClient.objects.get_or_create(name="step-queries", defaults={"channel": "web"})
    address = load.order_body("x", random.Random(1))["delivery_address"]
    # Twice: the first order warms caches (content types, the centre list) like a live worker.
    for _ in range(2):
        counts = {}
        with mock.patch("orders.pipeline.start"), CaptureQueriesContext(connection) as queries:
            order = order_place(
                client=client,
                customer_id="step-queries",
                items=[ItemRequest(sku="BENCH-0001", quantity=1)],
                delivery_address=address,
                payment_method="upi",
                payment_token="tok_ok",  # noqa: S106 (the simulator's test token)
                prescription_id=None,
            ).order
        counts["place"] = queries.captured_queries
        for step, function in INLINE_STEPS:
            with CaptureQueriesContext(connection) as queries:
                function(order.pk)
            counts[str(step)] = queries.captured_queries
    for name, captured in counts.items():
        print(f"{name}: {len(captured)}")
        if verbose:
            for query in captured:
                print("   ", query["sql"][:200])
    print(f"total: {sum(len(c) for c in counts.values())} (BEGIN and COMMIT count as one each)")


if __name__ == "__main__":
    main()
