"""A client generated from the live schema (openapi-python-client, as `make client` does)
drives the API through its typed models and methods: place, read, list and cancel."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT
from tests.e2e.conftest import live_schema

pytestmark = pytest.mark.e2e
PACKAGE = "cot_client"


@pytest.fixture
def cot_client(stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The `cot_client` package generated from the live `/api/schema/` into a temporary
    directory, imported."""
    venv_bin = Path(sys.executable).parent
    subprocess.run(
        [
            str(venv_bin / "openapi-python-client"),
            "generate",
            "--url",
            f"{stack.api_url}/api/schema/",
            "--config",
            str(ROOT / "clients" / "openapi-python-client.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / PACKAGE),
        ],
        # Its post-generation hooks run ruff (from this virtualenv); nothing is downloaded.
        env={**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"},
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=300,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module(PACKAGE)
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


def test_generated_client_places_reads_lists_and_cancels_an_order(stack, cot_client):
    from cot_client import AuthenticatedClient
    from cot_client.api.orders import orders_cancel, orders_get, orders_list, orders_place
    from cot_client.models import (
        AddressIn,
        FailureReasonEnum,
        ItemIn,
        Order,
        OrderCancelIn,
        OrderPage,
        OrderPlaceIn,
        OrderStatusEnum,
        PaymentMethodEnum,
    )

    customer = f"C-{uuid.uuid4().hex[:8]}"
    client = AuthenticatedClient(
        base_url=stack.api_url,
        token=stack.keys["web"],
        prefix="Api-Key",
        raise_on_unexpected_status=True,
        # The generated client's answers are checked against the schema like any other.
        httpx_args={"event_hooks": {"response": [live_schema(stack).check]}},
    )
    with client:
        placed = orders_place.sync(
            client=client,
            body=OrderPlaceIn(
                customer_id=customer,
                items=[ItemIn(sku="PARA-500", quantity=2)],
                delivery_address=AddressIn(
                    name="A. Rao",
                    line1="12 MG Road",
                    city="Bengaluru",
                    state="KA",
                    pincode="560001",
                    phone="+919800000001",
                ),
                payment_method=PaymentMethodEnum.UPI,
                payment_token="tok_ok",
            ),
            idempotency_key=f"gen-{customer}",
        )
        assert isinstance(placed, Order), placed
        assert placed.status == OrderStatusEnum.RECEIVED
        assert placed.customer_id == customer
        assert [(i.sku, i.quantity, i.unit_price) for i in placed.items] == [
            ("PARA-500", 2, "30.00")
        ]

        deadline = time.monotonic() + 30
        order = orders_get.sync(order_id=placed.id, client=client)
        while order.status != OrderStatusEnum.CONFIRMED and time.monotonic() < deadline:
            time.sleep(0.2)
            order = orders_get.sync(order_id=placed.id, client=client)
        assert isinstance(order, Order)
        assert order.status == OrderStatusEnum.CONFIRMED, order
        assert order.payment.method == PaymentMethodEnum.UPI
        assert order.total_amount == "60.00"

        page = orders_list.sync(client=client, customer_id=customer)
        assert isinstance(page, OrderPage)
        assert [o.id for o in page.results] == [placed.id]
        assert page.next_ is None

        cancelled = orders_cancel.sync(
            order_id=placed.id, client=client, body=OrderCancelIn(reason="changed my mind")
        )
        assert isinstance(cancelled, Order), cancelled
        assert cancelled.status == OrderStatusEnum.CANCELLED
        assert cancelled.failure_reason == FailureReasonEnum.CANCELLED_BY_CLIENT
