"""Ops refund part of a payment, and the inventory team reads the write-offs, in a real
browser: the pages, the action menu, the form and the messages they see."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from core.tests.factories import ApiClientFactory
from inventory.models import StockBatch
from inventory.services import stock_take_back
from orders.tests.factories import place_order
from payments.models import Payment
from payments.services import payment_charge, payment_prepare
from tests.browser.conftest import wait_for_title

pytestmark = pytest.mark.django_db(transaction=True)


def test_ops_refund_part_of_a_payment_with_a_reason(
    live_server, staff_login, demo_catalog, simulator
):
    order = place_order(ApiClientFactory(), items=[("PARA-500", 2)])
    payment_prepare(order_id=order.pk, method="upi", amount=order.total_amount)
    payment_charge(order_id=order.pk, token="tok_ok")
    payment = Payment.objects.get(order_id=order.pk)

    browser = staff_login("ops")
    browser.get(f"{live_server.url}/admin/payments/payment/")
    browser.find_element(By.CSS_SELECTOR, f"input.action-select[value='{payment.pk}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_visible_text(
        "Refund selected payments (all or part)"
    )
    browser.find_element(By.NAME, "index").click()
    wait_for_title(browser, "Refund payments")

    # The confirmation page: what was captured and what is left, an amount and a reason.
    assert "Refund payments" in browser.page_source
    assert f"{payment.amount}" in browser.find_element(By.CSS_SELECTOR, "#content table").text
    browser.find_element(By.NAME, f"amount_{payment.pk}").send_keys("12.50")
    browser.find_element(By.ID, "refund-reason").send_keys("one strip damaged in transit")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit][value=Refund]").click()
    wait_for_title(browser, "Select payment")

    assert "Refunded: 1" in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    row = browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr").text
    assert "12.50" in row and "Partially refunded" in row
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", Decimal("12.50"))
    refunded = order.events.get(type="payment.refunded")
    assert refunded.data["reason"] == "one strip damaged in transit"
    assert refunded.data["by"] == "ops:b-ops"


def test_the_inventory_team_reads_write_offs_and_finds_the_export(
    live_server, staff_login, demo_catalog
):
    batch = StockBatch.objects.select_related("product", "center").first()
    StockBatch.objects.filter(pk=batch.pk).update(expires_on=datetime.date.today())
    stock_take_back(
        order_id=uuid.uuid4(),
        reference="rto:1",
        center=batch.center.code,
        sku=batch.product.sku,
        batch=batch.batch,
        quantity=2,
    )

    browser = staff_login("inventory")
    browser.get(f"{live_server.url}/admin/")
    browser.find_element(By.LINK_TEXT, "Stock write-offs").click()
    wait_for_title(browser, "write-off")
    table = browser.find_element(By.ID, "result_list").text
    assert batch.batch in table and batch.product.sku in table
    assert "short" in table.lower()  # the reason, as the list shows it
    export = browser.find_element(By.CSS_SELECTOR, ".object-tools a")
    assert export.is_displayed() and export.text.lower() == "export csv"
    # Records are evidence: no add button, no delete action.
    assert not browser.find_elements(By.CSS_SELECTOR, ".object-tools a.addlink")
    assert "delete_selected" not in browser.page_source
