"""GET /api/v1/inventory/replenishment/: inventory staff only, most urgent first, by
centre, typed as the schema says."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from forecasting.services import forecast_run
from forecasting.tests.factories import history_write, past_days

pytestmark = pytest.mark.django_db


def staff(role: str) -> dict[str, str]:
    User.objects.create_user(f"api-{role}", password="pw-12345", is_staff=True).groups.add(
        Group.objects.get(name=role)
    )
    token = base64.b64encode(f"api-{role}:pw-12345".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


@pytest.fixture
def forecast(demo_catalog):
    days = past_days(60)
    rng = np.random.default_rng(9)
    history_write(
        {
            ("PARA-500", "BLR-1"): rng.poisson(40, len(days)),  # sells fast: little cover
            ("PARA-500", "DEL-1"): rng.poisson(2, len(days)),
            ("CETI-10", "BLR-1"): rng.poisson(3, len(days)),
        },
        days,
    )
    return forecast_run(skus=["PARA-500", "CETI-10"])


def test_inventory_staff_get_rows_most_urgent_first(forecast):
    client = APIClient()
    response = client.get("/api/v1/inventory/replenishment/?page_size=200", **staff("inventory"))
    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert len(rows) == forecast.series
    urgencies = [
        (r["days_of_cover"] - r["lead_time_days"]) if r["days_of_cover"] is not None else 1e9
        for r in rows
    ]
    assert urgencies == sorted(urgencies)
    first = rows[0]
    assert first["status"] in ("stockout_risk", "reorder", "ok")
    assert len(first["forecast"]["mean"]) == 28 and first["model"]
    assert first["as_of"] == forecast.as_of.isoformat()
    no_demand = [r for r in rows if r["status"] == "no_demand"]
    assert no_demand and all(
        r["forecast"] is None and r["suggested_quantity"] == 0 and r["order_up_to"] is None
        for r in no_demand
    )

    # Page by page through the cursor: the same rows in the same order.
    paged, url = [], "/api/v1/inventory/replenishment/?page_size=2"
    auth = {"HTTP_AUTHORIZATION": f"Basic {base64.b64encode(b'api-inventory:pw-12345').decode()}"}
    while url:
        page = client.get(url, **auth).json()
        paged += [(r["sku"], r["center"]) for r in page["results"]]
        url = page["next"]
    assert paged == [(r["sku"], r["center"]) for r in rows]

    by_center = client.get("/api/v1/inventory/replenishment/?center=DEL-1", **staff("ops"))
    assert by_center.status_code == 403  # ops is not the inventory role
    by_center = client.get("/api/v1/inventory/replenishment/?center=DEL-1", **auth)
    assert {r["center"] for r in by_center.json()["results"]} == {"DEL-1"}


def test_bad_queries_and_callers(forecast):
    inventory = staff("inventory")
    client = APIClient()
    unknown = client.get("/api/v1/inventory/replenishment/?center=NOPE-9", **inventory)
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0] == {
        "code": "unknown_center",
        "detail": "No such centre.",
        "attr": "center",
    }
    too_long = client.get(f"/api/v1/inventory/replenishment/?center={'x' * 30}", **inventory)
    assert too_long.status_code == 400 and too_long.json()["errors"][0]["code"] == "max_length"
    key = api_key_for(ApiClientFactory())
    as_client = client.get("/api/v1/inventory/replenishment/", HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert as_client.status_code == 403 and set(as_client.json()) == {"type", "errors"}
    assert client.get("/api/v1/inventory/replenishment/").status_code == 401
    # A username PostgreSQL cannot hold (a NUL byte) is refused, not a server error.
    nul = base64.b64encode(b"inv\x00entory:pw").decode()
    refused = client.get("/api/v1/inventory/replenishment/", HTTP_AUTHORIZATION=f"Basic {nul}")
    assert refused.status_code == 401 and set(refused.json()) == {"type", "errors"}
