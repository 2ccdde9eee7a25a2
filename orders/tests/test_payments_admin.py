"""Payments in admin: attempts, the refund action (with confirmation) and the breakers."""

import pytest

from core.breaker import breaker_enter, breaker_exit
from core.tests.factories import ApiClientFactory
from orders.models import Order
from orders.tests.factories import place_order
from orders.tests.test_admin import login
from payments.models import Payment
from payments.services import payment_charge, payment_prepare

pytestmark = pytest.mark.django_db


@pytest.fixture
def captured(demo_catalog, simulator):
    order = place_order(ApiClientFactory(), items=[("PARA-500", 1)])
    payment_prepare(order_id=order.pk, method="upi", amount=order.total_amount)
    payment_charge(order_id=order.pk, token="tok_ok")
    return Payment.objects.get(order_id=order.pk)


def test_payment_page_shows_attempts_with_gateway_key_and_status(captured):
    page = login("ops").get(f"/admin/payments/payment/{captured.pk}/change/")
    assert page.status_code == 200
    assert f"order:{captured.order_id}:charge:1".encode() in page.content
    assert b"alpha" in page.content and b"captured" in page.content


def test_refund_action_asks_first_then_refunds_part_then_the_rest(captured, simulator):
    client = login("ops")
    form = {"action": "refund_payments", "_selected_action": [str(captured.pk)]}
    confirm = client.post("/admin/payments/payment/", form)
    assert confirm.status_code == 200 and b'name="reason"' in confirm.content
    assert Payment.objects.get(pk=captured.pk).status == "captured"

    # No reason: asked again, nothing refunded.
    unexplained = client.post("/admin/payments/payment/", {**form, "confirm": "yes"})
    assert b"Say why" in unexplained.content
    assert simulator.ledger()["refunds"] == []

    part = {**form, "confirm": "yes", "reason": "strip damaged", f"amount_{captured.pk}": "5.00"}
    done = client.post("/admin/payments/payment/", part, follow=True)
    assert b"Refunded: 1" in done.content
    payment = Payment.objects.get(pk=captured.pk)
    assert (payment.status, str(payment.refunded_amount)) == ("partially_refunded", "5.00")

    too_much = {**part, f"amount_{captured.pk}": str(payment.amount)}
    refused = client.post("/admin/payments/payment/", too_much, follow=True)
    assert b"Not refunded" in refused.content and b"left to refund" in refused.content

    rest = {**form, "confirm": "yes", "reason": "goodwill"}
    client.post("/admin/payments/payment/", rest, follow=True)
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("refunded", payment.amount)
    again = client.post("/admin/payments/payment/", rest, follow=True)
    assert b"Refunded: 0" in again.content
    refunds = simulator.ledger()["refunds"]
    assert [r["idempotency_key"] for r in refunds] == [
        f"order:{captured.order_id}:refund:1",
        f"order:{captured.order_id}:refund:2",
    ]
    order = Order.objects.get(pk=captured.order_id)
    events = list(order.events.filter(type="payment.refunded").order_by("pk"))
    assert [e.data["amount"] for e in events] == ["5.00", str(payment.amount - 5)]
    assert events[0].data["by"] == "ops:u-ops" and events[0].data["reason"] == "strip damaged"


def test_only_roles_with_the_refund_permission_get_the_action(captured):
    form = {"action": "refund_payments", "_selected_action": [str(captured.pk)], "confirm": "yes"}
    pharmacist = login("pharmacist")
    assert pharmacist.post("/admin/payments/payment/", form).status_code == 403
    assert Payment.objects.get(pk=captured.pk).status == "captured"


def test_breaker_page_shows_the_live_state_of_every_target(db, settings):
    settings.COT_BREAKER_FAILURE_THRESHOLD = 2
    for _ in range(2):
        breaker_exit(breaker_enter("gateways/alpha"), failed=True)
    page = login("ops").get("/admin/payments/payment/breakers/")
    assert page.status_code == 200
    html = page.content.decode()
    for target in ("gateways/alpha", "gateways/beta", "logistics/swift", "notify"):
        assert target in html
    assert '<tr class="breaker-open">\n      <td>gateways/alpha</td>' in html
    assert '<tr class="breaker-closed">\n      <td>gateways/beta</td>' in html
    assert b"Circuit breakers" in login().get("/admin/payments/payment/").content
