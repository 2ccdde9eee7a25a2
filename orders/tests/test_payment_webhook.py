"""The payments webhook, signed, through the API and down to the order's
timeline and the simulator's ledger."""

import json
import uuid

import pytest
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory
from core.webhooks import SIGNATURE_HEADER, webhook_signature
from orders.enums import FailureReason, OrderStatus
from orders.models import Order
from orders.services.ending import order_end
from orders.tests.factories import place_order
from payments.models import Payment
from payments.services import payment_charge, payment_prepare

pytestmark = pytest.mark.django_db
URL = "/api/v1/webhooks/payments/"
AT = "2026-01-05T10:00:00Z"


def post(body, *, secret=None, signature=None, settings=None):
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    headers = {}
    if signature is None and secret is not None:
        signature = webhook_signature(secret, raw)
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return APIClient().post(URL, raw, content_type="application/json", headers=headers)


@pytest.fixture
def secret(settings):
    settings.PAYMENTS_WEBHOOK_SECRET = "test-secret"
    return "test-secret"


@pytest.fixture
def order(demo_catalog, simulator):
    order = place_order(ApiClientFactory(), items=[("PARA-500", 1)])
    payment_prepare(order_id=order.pk, method="upi", amount=order.total_amount)
    return order


def events(order):
    return list(Order.objects.get(pk=order.pk).events.values_list("type", flat=True))


def captures(simulator, order):
    return [c for c in simulator.ledger()["charges"] if str(order.pk) in c["idempotency_key"]]


@pytest.mark.parametrize("signature", [None, "sha256=00", "md5=x", ""])
def test_a_missing_or_bad_signature_is_401_and_changes_nothing(order, secret, signature):
    payment_charge(order_id=order.pk, token="tok_ok")
    reference = Payment.objects.get(order_id=order.pk).reference
    body = {"reference": reference, "status": "refunded", "at": AT}
    response = post(body, signature=signature)
    assert response.status_code == 401
    assert response.json()["type"] == "client_error"
    assert response.json()["errors"][0]["code"] == "bad_signature"
    assert post(body, secret="another-secret").status_code == 401
    assert Payment.objects.get(order_id=order.pk).status == "captured"


def test_a_late_capture_for_an_ended_order_is_applied_once_and_refunded(
    order, secret, simulator, settings, django_capture_on_commit_callbacks
):
    settings.COT_HTTP_READ_TIMEOUT = 0.3
    simulator.control("gateways/alpha", latency_ms=1000)
    with pytest.raises(Exception):  # noqa: B017 - the answer is lost; alpha captured
        payment_charge(order_id=order.pk, token="tok_ok")
    # The order gave up waiting; the gateway could not be asked during compensation.
    order_end(order=order, to=OrderStatus.PAYMENT_FAILED, reason=FailureReason.PAYMENT_UNAVAILABLE)
    simulator.control("gateways/alpha", latency_ms=0)
    notice = {"reference": f"order:{order.pk}:charge:1", "status": "captured", "at": AT}

    with django_capture_on_commit_callbacks(execute=True):
        response = post(notice, secret=secret)
    assert (response.status_code, response.json()) == (200, {"result": "applied"})
    payment = Payment.objects.get(order_id=order.pk)
    assert payment.status == "refunded" and payment.reference.startswith("ch_")
    assert {"payment.captured", "payment.refunded"} <= set(events(order))
    assert len(captures(simulator, order)) == 1
    assert [r["charge_id"] for r in simulator.ledger()["refunds"]] == [payment.reference]

    before = events(order)
    with django_capture_on_commit_callbacks(execute=True):
        replay = post(notice, secret=secret)
    assert (replay.status_code, replay.json()) == (200, {"result": "already_applied"})
    assert events(order) == before
    assert len(simulator.ledger()["refunds"]) == 1


def test_a_refund_made_at_the_gateway_is_recorded_once(order, secret, simulator):
    payment_charge(order_id=order.pk, token="tok_ok")
    reference = Payment.objects.get(order_id=order.pk).reference
    notice = {"reference": reference, "status": "refunded", "at": AT}
    assert post(notice, secret=secret).json() == {"result": "applied"}
    assert post(notice, secret=secret).json() == {"result": "already_applied"}
    assert Payment.objects.get(order_id=order.pk).status == "refunded"
    assert events(order).count("payment.refunded") == 1


def test_a_failure_notice_frees_an_unanswered_charge_to_try_again(
    order, secret, simulator, settings
):
    settings.COT_HTTP_READ_TIMEOUT = 0.3
    simulator.control("gateways/alpha", error_rate=1.0)
    with pytest.raises(Exception):  # noqa: B017 - a 500: outcome unknown
        payment_charge(order_id=order.pk, token="tok_ok")
    simulator.control("gateways/alpha", error_rate=0.0)
    notice = {"reference": f"order:{order.pk}:charge:1", "status": "failed", "at": AT}
    assert post(notice, secret=secret).json() == {"result": "applied"}
    assert post(notice, secret=secret).json() == {"result": "already_applied"}
    assert payment_charge(order_id=order.pk, token="tok_ok").status == "captured"
    keys = [c["idempotency_key"] for c in captures(simulator, order)]
    assert keys == [f"order:{order.pk}:charge:2"]


def test_contradicting_and_unknown_notices_are_200_and_change_nothing(order, secret):
    payment_charge(order_id=order.pk, token="tok_ok")
    key = f"order:{order.pk}:charge:1"
    assert post({"reference": key, "status": "failed", "at": AT}, secret=secret).json() == {
        "result": "ignored"
    }
    unknown = {"reference": f"ch_{uuid.uuid4().hex}", "status": "captured", "at": AT}
    assert post(unknown, secret=secret).json() == {"result": "unknown_reference"}
    assert Payment.objects.get(order_id=order.pk).status == "captured"


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({"reference": "x", "status": "settled", "at": AT}, "status"),
        ({"reference": "x", "status": "captured"}, "at"),
        ({"reference": "x", "status": "captured", "at": AT, "extra": 1}, "extra"),
    ],
)
def test_signed_but_malformed_notices_are_400(order, secret, body, attr):
    response = post(body, secret=secret)
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert attr in [e["attr"] for e in response.json()["errors"]]


def test_not_json_is_400_and_an_oversized_body_413(secret):
    assert post(b"not json", secret=secret).status_code == 400
    big = b"x" * (1024 * 1024 + 1)
    response = post(big, secret=secret)
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "payload_too_large"
