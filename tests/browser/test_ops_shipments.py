"""Ops bring back a parcel the courier never reported, by hand, in a real browser: the
action, its form, and what the order then shows."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from core.tests.factories import ApiClientFactory
from logistics.models import Shipment
from orders.models import Order
from orders.tests.factories import place_order
from tests.browser.conftest import wait_for_title

pytestmark = pytest.mark.django_db(transaction=True)


def test_ops_move_a_parcel_back_to_its_centre_and_the_order_is_returned_and_refunded(
    live_server, staff_login, demo_catalog, simulator, settings
):
    settings.COT_PIPELINE_MODE = "inline"
    order = place_order(ApiClientFactory(), items=[("PARA-500", 1)])
    order.refresh_from_db()
    assert order.status == "confirmed"
    shipment = Shipment.objects.get(order_id=order.pk)

    browser = staff_login("ops")
    browser.get(f"{live_server.url}/admin/logistics/shipment/")
    browser.find_element(By.CSS_SELECTOR, f"input.action-select[value='{shipment.pk}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_visible_text(
        "Move selected shipments by hand"
    )
    browser.find_element(By.NAME, "index").click()
    wait_for_title(browser, "Move shipments by hand")

    assert shipment.awb in browser.page_source
    Select(browser.find_element(By.NAME, "status")).select_by_value("returned")
    browser.find_element(By.NAME, "note").send_keys("parcel found at the BLR-1 dock")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit][value=Move]").click()
    wait_for_title(browser, "Select shipment")
    assert "Moved: 1" in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text

    # The order's page shows what followed: returned, back in stock, refunded.
    browser.get(f"{live_server.url}/admin/orders/order/{order.pk}/change/")
    page = browser.find_element(By.ID, "content").text
    for shown in ("shipment.returned", "inventory.restocked", "order.returned"):
        assert shown in page, shown
    assert "parcel found at the BLR-1 dock" in page
    order = Order.objects.get(pk=order.pk)
    assert order.status == "returned"
    refunds = [r for r in simulator.ledger()["refunds"] if str(order.pk) in r["idempotency_key"]]
    assert [r["amount"] for r in refunds] == [f"{order.total_amount:.2f}"]
