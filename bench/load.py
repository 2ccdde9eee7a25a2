"""The load process: open-loop arrivals at fixed send times, over HTTP (orders) or
straight to the broker (the `floor` canvas)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

SKUS = 100
PINCODE = "560001"


def catalog(skus: int = SKUS) -> dict:
    """One centre, `skus` products with far more stock than any run can sell."""
    return {
        "products": [
            {
                "sku": f"BENCH-{n:04d}",
                "name": f"Bench product {n}",
                "price": "10.00",
                "schedule": "otc",
            }
            for n in range(skus)
        ],
        "centers": [
            {"code": "BENCH-1", "name": "Bench centre", "priority": 1, "pincode_prefixes": ["560"]}
        ],
        "stock": [
            {
                "center": "BENCH-1",
                "sku": f"BENCH-{n:04d}",
                "batch": f"B-{n:04d}",
                "expires_on": "2030-12-31",
                "quantity": 100_000_000,
            }
            for n in range(skus)
        ],
    }


def order_body(customer_id: str, rng: random.Random) -> dict:
    return {
        "customer_id": customer_id,
        "items": [{"sku": f"BENCH-{rng.randrange(SKUS):04d}", "quantity": 1}],
        "delivery_address": {
            "name": "Bench",
            "line1": "1 MG Road",
            "line2": "",
            "city": "Bengaluru",
            "state": "KA",
            "pincode": PINCODE,
            "phone": "+919800000001",
        },
        "payment_method": "upi",
        "payment_token": "tok_ok",
    }


@dataclass
class Sent:
    customer_id: str
    scheduled: float  # wall-clock time the request was due
    status: int | None = None  # HTTP status; None: no answer (timeout, refused)
    answered: float | None = None

    @property
    def ok(self) -> bool:
        # 202 Accepted: the order is stored and its pipeline started.
        return self.status in (201, 202)

    @property
    def api_seconds(self) -> float | None:
        # From the scheduled send time, not the actual one: a late sender counts as latency.
        return None if self.answered is None else self.answered - self.scheduled


async def _sleep_until(wall: float) -> None:
    delay = wall - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def orders_drive(
    api_url: str, api_key: str, tag: str, times: list[float], start: float
) -> list[Sent]:
    rng = random.Random(tag)
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    headers = {"Authorization": f"Api-Key {api_key}"}
    async with httpx.AsyncClient(
        base_url=api_url, headers=headers, limits=limits, timeout=30.0
    ) as client:

        async def one(sent: Sent, body: dict) -> None:
            await _sleep_until(sent.scheduled)
            try:
                response = await client.post("/api/v1/orders/", json=body)
                sent.status = response.status_code
            except httpx.HTTPError:
                sent.status = None
            sent.answered = time.time()

        sends = [Sent(f"{tag}-{n}", start + t) for n, t in enumerate(times)]
        await asyncio.gather(*(one(s, order_body(s.customer_id, rng)) for s in sends))
    return sends


async def floor_drive(tag: str, times: list[float], start: float) -> list[Sent]:
    from bench import floor_app

    def send(sent: Sent) -> None:
        try:
            floor_app.pipeline_start.delay(sent.customer_id, time.time())
            sent.status = 202
        except Exception:  # any broker failure is an error of the run, counted
            sent.status = None
        sent.answered = time.time()

    loop = asyncio.get_running_loop()
    # A publish is one Redis round trip; threads keep the schedule when Redis is slow.
    with ThreadPoolExecutor(16) as pool:

        async def one(sent: Sent) -> None:
            await _sleep_until(sent.scheduled)
            await loop.run_in_executor(pool, send, sent)

        sends = [Sent(f"{tag}-{uuid.uuid4().hex[:8]}-{n}", start + t) for n, t in enumerate(times)]
        await asyncio.gather(*(one(s) for s in sends))
    return sends
