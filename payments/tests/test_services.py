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


# -- breakers, claims, refunds, collection


def test_an_open_breaker_sends_the_charge_to_the_next_gateway_at_once(simulator, settings):
    from core.breaker import BreakerState, breaker_status

    settings.COT_BREAKER_FAILURE_THRESHOLD = 2
    order_id = prepared()  # its intent is at alpha
    simulator.control("gateways/alpha", down=True)
    for _ in range(2):
        prepared()  # alpha refuses their intents: two failures
    assert breaker_status("gateways/alpha").state == BreakerState.OPEN
    simulator.control("gateways/alpha", down=False)  # back, but the breaker is still open

    assert payment_charge(order_id=order_id, token="tok_ok").status == PaymentStatus.CAPTURED
    assert [c["target"] for c in charges(simulator, order_id)] == ["gateways/beta"]
    attempts = list(
        Payment.objects.get(order_id=order_id).attempts.values_list("gateway", "status")
    )
    assert attempts == [("alpha", "unavailable"), ("beta", "captured")]


def test_an_attempt_sent_by_another_process_is_not_sent_twice_at_once(simulator):
    from payments.models import PaymentAttempt
    from payments.services import ChargeInProgress
    from payments.services.charge import CHARGES

    order_id = prepared()
    payment = Payment.objects.get(order_id=order_id)
    attempt = PaymentAttempt.objects.create(
        payment=payment, gateway="alpha", idempotency_key=f"order:{order_id}:charge:1"
    )
    assert CHARGES.claim(payment, attempt) == 1  # another worker is sending it right now
    with pytest.raises(ChargeInProgress):
        payment_charge(order_id=order_id, token="tok_ok")
    assert charges(simulator, order_id) == []


def test_a_resent_attempt_never_fails_over_even_if_its_gateway_is_down(simulator):
    from payments.models import PaymentAttempt

    order_id = prepared()
    payment = Payment.objects.get(order_id=order_id)
    # A worker claimed and sent it, then died: the gateway may have captured.
    PaymentAttempt.objects.create(
        payment=payment, gateway="alpha", idempotency_key=f"order:{order_id}:charge:1", sends=1
    )
    simulator.control("gateways/alpha", down=True)
    with pytest.raises(ExternalUnavailable):
        payment_charge(order_id=order_id, token="tok_ok")
    assert charges(simulator, order_id) == []
    assert payment.attempts.get().status == "started"


def test_cancel_settles_an_unanswered_charge_then_refunds_it(simulator, settings):
    order_id = prepared()
    settings.COT_HTTP_READ_TIMEOUT = 0.3
    simulator.control("gateways/alpha", latency_ms=1000)
    with pytest.raises(ExternalTimeout):
        payment_charge(order_id=order_id, token="tok_ok")  # captured at alpha, answer lost
    simulator.control("gateways/alpha", latency_ms=0)

    assert payment_cancel(order_id=order_id, token="tok_ok") == PaymentStatus.REFUNDED
    payment = Payment.objects.get(order_id=order_id)
    assert payment.status == PaymentStatus.REFUNDED and payment.gateway == "alpha"
    assert len(charges(simulator, order_id)) == 1
    [refund] = simulator.ledger()["refunds"]
    assert (refund["target"], refund["charge_id"]) == ("gateways/alpha", payment.reference)
    kinds = list(payment.attempts.values_list("kind", "status"))
    assert kinds == [("charge", "captured"), ("refund", "refunded")]


def test_refund_goes_to_the_gateway_that_captured(simulator):
    simulator.control("gateways/alpha", down=True)
    order_id = prepared()
    payment_charge(order_id=order_id, token="tok_ok")
    simulator.control("gateways/alpha", down=False)
    assert payment_cancel(order_id=order_id) == PaymentStatus.REFUNDED
    assert [r["target"] for r in simulator.ledger()["refunds"]] == ["gateways/beta"]


def test_ops_refund_is_idempotent_and_tells_the_order(simulator):
    from payments.services import NotRefundable, payment_refund
    from payments.signals import payment_changed

    heard = []
    payment_changed.connect(lambda **kw: heard.append(kw["status"]), weak=False, dispatch_uid="t")
    try:
        order_id = prepared()
        with pytest.raises(NotRefundable):
            payment_refund(order_id=order_id)  # not captured yet
        payment_charge(order_id=order_id, token="tok_ok")
        assert payment_refund(order_id=order_id) is True
        assert payment_refund(order_id=order_id) is False
    finally:
        payment_changed.disconnect(dispatch_uid="t")
    assert heard == ["refunded"]
    assert len(simulator.ledger()["refunds"]) == 1


def test_cash_on_delivery_is_captured_once_when_collected(simulator):
    from payments.services import payment_collect

    order_id = prepared(method="cod")
    assert payment_collect(order_id=order_id) is False  # not handed to the courier yet
    payment_charge(order_id=order_id, token="")
    assert payment_collect(order_id=order_id) is True
    assert payment_collect(order_id=order_id) is False
    assert Payment.objects.get(order_id=order_id).status == PaymentStatus.CAPTURED
    assert simulator.ledger()["charges"] == []
