"""Payment services against the real simulator over HTTP."""

import uuid
from decimal import Decimal

import pytest

from core.http import ExternalTimeout, ExternalUnavailable
from payments.enums import PaymentStatus
from payments.models import Payment
from payments.services import payment_cancel, payment_charge, payment_prepare

pytestmark = pytest.mark.django_db
AMOUNT = Decimal("60.00")


def prepared(method="upi"):
    order_id = uuid.uuid4()
    payment_prepare(order_id=order_id, method=method, amount=AMOUNT)
    return order_id


def charges(simulator, order_id):
    return [c for c in simulator.ledger()["charges"] if str(order_id) in c["idempotency_key"]]


def test_prepare_then_charge_captures_once(simulator):
    order_id = prepared()
    assert payment_prepare(order_id=order_id, method="upi", amount=AMOUNT).gateway == "alpha"

    first = payment_charge(order_id=order_id, token="tok_ok")
    again = payment_charge(order_id=order_id, token="tok_ok")

    assert first.status == again.status == PaymentStatus.CAPTURED
    assert len(charges(simulator, order_id)) == 1
    assert (
        len([i for i in simulator.ledger()["intents"] if str(order_id) in i["idempotency_key"]])
        == 1
    )


@pytest.mark.parametrize("token", ["tok_decline", "tok_insufficient"])
def test_a_decline_is_final_and_never_fails_over(simulator, token):
    order_id = prepared()
    outcome = payment_charge(order_id=order_id, token=token)
    assert (outcome.status, outcome.reason) == (PaymentStatus.DECLINED, "payment_declined")
    assert [c["target"] for c in charges(simulator, order_id)] == ["gateways/alpha"]


def test_unavailable_gateway_fails_over_to_the_next(simulator):
    simulator.control("gateways/alpha", down=True)
    order_id = prepared()
    assert payment_charge(order_id=order_id, token="tok_ok").status == PaymentStatus.CAPTURED
    assert Payment.objects.get(order_id=order_id).gateway == "beta"
    assert [c["target"] for c in charges(simulator, order_id)] == ["gateways/beta"]


def test_all_gateways_down_raises_and_a_later_retry_succeeds(simulator):
    order_id = prepared()
    simulator.control("gateways/alpha", down=True)
    simulator.control("gateways/beta", down=True)
    with pytest.raises(ExternalUnavailable):
        payment_charge(order_id=order_id, token="tok_ok")
    simulator.control("gateways/alpha", down=False)
    assert payment_charge(order_id=order_id, token="tok_ok").status == PaymentStatus.CAPTURED
    assert len(charges(simulator, order_id)) == 1


def test_timeout_after_capture_is_retried_with_the_same_key(simulator, settings):
    order_id = prepared()
    settings.COT_HTTP_READ_TIMEOUT = 0.3
    simulator.control("gateways/alpha", latency_ms=1000)
    with pytest.raises(ExternalTimeout):
        payment_charge(order_id=order_id, token="tok_ok")
    # Even if alpha now looks down, the charge must not move to beta: alpha may have it.
    simulator.control("gateways/alpha", latency_ms=0, down=True)
    with pytest.raises(ExternalUnavailable):
        payment_charge(order_id=order_id, token="tok_ok")
    simulator.control("gateways/alpha", down=False)

    assert payment_charge(order_id=order_id, token="tok_ok").status == PaymentStatus.CAPTURED
    assert [c["target"] for c in charges(simulator, order_id)] == ["gateways/alpha"]


def test_cancel_refunds_a_capture_once(simulator):
    order_id = prepared()
    payment_charge(order_id=order_id, token="tok_ok")
    assert payment_cancel(order_id=order_id) == PaymentStatus.REFUNDED
    assert payment_cancel(order_id=order_id) is None
    refunds = simulator.ledger()["refunds"]
    assert len(refunds) == 1


def test_cancel_voids_an_uncaptured_payment_without_calling_a_gateway(simulator):
    order_id = prepared()
    assert payment_cancel(order_id=order_id) == PaymentStatus.VOIDED
    assert payment_charge(order_id=order_id, token="tok_ok").status == PaymentStatus.VOIDED
    assert charges(simulator, order_id) == []


def test_cash_on_delivery_skips_the_gateway(simulator):
    order_id = prepared(method="cod")
    outcome = payment_charge(order_id=order_id, token="")
    assert outcome.status == PaymentStatus.PENDING_COLLECTION
    ledger = simulator.ledger()
    assert not [
        e for e in ledger["intents"] + ledger["charges"] if str(order_id) in e["idempotency_key"]
    ]
