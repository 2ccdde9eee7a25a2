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


def test_refund_action_asks_first_then_refunds_once(captured, simulator):
    client = login("ops")
    form = {"action": "refund_payments", "_selected_action": [str(captured.pk)]}
    confirm = client.post("/admin/payments/payment/", form)
    assert confirm.status_code == 200 and b"Yes, refund" in confirm.content
    assert Payment.objects.get(pk=captured.pk).status == "captured"

    done = client.post("/admin/payments/payment/", {**form, "confirm": "yes"}, follow=True)
    assert b"Refunded: 1" in done.content
    assert Payment.objects.get(pk=captured.pk).status == "refunded"
    again = client.post("/admin/payments/payment/", {**form, "confirm": "yes"}, follow=True)
    assert b"Refunded: 0" in again.content
    assert len(simulator.ledger()["refunds"]) == 1
    order = Order.objects.get(pk=captured.order_id)
    refunded = order.events.get(type="payment.refunded")
    assert refunded.data["by"] == "ops:u-ops"


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
