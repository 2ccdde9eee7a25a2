"""Ops handle a customer's data-rights request in a real browser: find the customer by an
order number, download the export, erase, and read what the law keeps."""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By

from core.tests.factories import ApiClientFactory
from orders.models import Order
from orders.tests.factories import place_order
from prescriptions.tests.factories import prescription_with
from privacy.models import PrivacyRequest
from tests.browser.conftest import wait_for_title

pytestmark = pytest.mark.django_db(transaction=True)

EXPORT = """
const done = arguments[arguments.length - 1];
const form = document.getElementById("export-form");
fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin"})
  .then(r => r.text().then(body => done([r.status, r.headers.get("Content-Disposition"), body])))
  .catch(e => done([0, "", String(e)]));
"""


def test_ops_export_then_erase_a_customer_and_see_what_the_law_keeps(
    live_server, staff_login, demo_catalog, simulator
):
    client = ApiClientFactory(name="web-shop")
    order = place_order(client, items=[("PARA-500", 1)], customer_id="C-42")
    Order.objects.filter(pk=order.pk).update(status="delivered")
    prescription = prescription_with([("AMOX-500", 5)], client=client, customer_id="C-42")

    browser = staff_login("ops")
    browser.get(f"{live_server.url}/admin/privacy/privacyrequest/")
    # Object tools are shown upper-case: found by where they lead.
    browser.find_element(By.CSS_SELECTOR, ".object-tools a[href$='/customer/']").click()
    wait_for_title(browser, "Customer data")
    browser.find_element(By.NAME, "order").send_keys(order.number)
    browser.find_element(By.CSS_SELECTOR, "#order-lookup input[type=submit]").click()
    wait_for_title(browser, "Customer data")

    assert browser.find_element(By.ID, "holdings").text == "C-42 at web-shop"
    orders = browser.find_element(By.ID, "customer-orders").text
    assert order.number in orders and "Delivered" in orders and "A. Rao" in orders
    assert str(prescription.pk)[:8] in browser.find_element(By.ID, "customer-prescriptions").text

    status, disposition, body = browser.execute_async_script(EXPORT)
    assert status == 200 and disposition.startswith('attachment; filename="cot-web-shop-C-42-')
    document = json.loads(body)
    assert [o["number"] for o in document["orders"]] == [order.number]
    assert document["orders"][0]["delivery_address"]["name"] == "A. Rao"

    browser.find_element(By.ID, "erase-link").click()
    wait_for_title(browser, "Erase customer data")
    kept = browser.find_element(By.ID, "kept-records").text
    assert f"prescription {prescription.pk}" in kept and "until" in kept
    # Without the tick nothing happens.
    browser.find_element(By.CSS_SELECTOR, "input[type=submit][value=Erase]").click()
    wait_for_title(browser, "Erase customer data")
    assert "Tick the box" in browser.page_source
    assert Order.objects.get(pk=order.pk).delivery_address["name"] == "A. Rao"

    browser.find_element(By.ID, "erase-confirm").click()
    browser.find_element(By.CSS_SELECTOR, "input[type=submit][value=Erase]").click()
    wait_for_title(browser, "privacy request")

    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    assert "Erased the personal data of C-42 (web-shop): 1 orders, 1 prescriptions" in message
    assert f"Kept, as the law requires: prescription {prescription.pk}" in message
    assert "prescription record" in browser.find_element(By.CSS_SELECTOR, "#content").text
    assert Order.objects.get(pk=order.pk).delivery_address["name"] == "[redacted]"
    kinds = sorted(PrivacyRequest.objects.values_list("kind", "requested_by"))
    assert kinds == [("erasure", "ops:b-ops"), ("export", "ops:b-ops")]
