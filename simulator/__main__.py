"""`python -m simulator [--host H] [--port P]`: serve the simulator with uvicorn.

One process, one event loop: the ledger and idempotency memory live in memory.
The couriers post tracking webhooks to COT_WEBHOOK_URL (default http://127.0.0.1:$PORT),
signed with LOGISTICS_WEBHOOK_SECRET; SIM_COURIER=off starts them switched off,
SIM_COURIER_MS sets each stage's time and SIM_DELIVERY_ATTEMPTS the delivery attempts.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from simulator.app import DEFAULT_LATENCY_ENV, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("SIMULATOR_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SIMULATOR_PORT", "8099")))
    parser.add_argument(
        "--latency",
        default=os.environ.get(DEFAULT_LATENCY_ENV, ""),
        help=f'start-up latencies "charges=500,shipments=400" (default: ${DEFAULT_LATENCY_ENV})',
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    try:
        app = create_app(args.latency)
    except ValueError as exc:
        sys.exit(f"simulator: {exc}")
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        backlog=4096,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
