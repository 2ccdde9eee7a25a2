"""A stock edit in the admin, then its audit trail, in a real browser under the
production Content-Security-Policy: the link on the batch's page, the list with who,
why and before → after, and the admin's scripts still working."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from selenium.webdriver.common.by import By

from inventory.models import StockBatch
from tests.browser.conftest import csp_violations, wait_for_title

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="the audit trail is written by PostgreSQL triggers; SQLite has none",
    ),
]


def test_a_stock_edit_shows_in_the_audit_trail(live_server, staff_login, demo_catalog):
    batch = StockBatch.objects.filter(product__sku="PARA-500").order_by("pk").first()
    browser = staff_login("ops")
    User.objects.get(username="b-ops").groups.add(Group.objects.get(name="inventory"))

    browser.get(f"{live_server.url}/admin/inventory/stockbatch/{batch.pk}/change/")
    # The admin's own scripts run under the policy: they add the date field's shortcuts.
    assert browser.find_element(By.CSS_SELECTOR, ".datetimeshortcuts a").text == "Today"
    on_hand = browser.find_element(By.NAME, "on_hand")
    on_hand.clear()
    on_hand.send_keys(str(batch.on_hand + 11))
    browser.find_element(By.NAME, "_continue").click()
    wait_for_title(browser, "Change stock batch")
    assert (
        "was changed successfully" in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    )

    browser.find_element(By.LINK_TEXT, "Audit trail").click()
    wait_for_title(browser, "audit entry")
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 1
    row = rows[0].text
    assert "b-ops" in row and "edit" in row
    assert f"on_hand: {batch.on_hand} → {batch.on_hand + 11}" in row

    # The whole trail, filtered by user in the sidebar, with the CSV export offered.
    browser.get(f"{live_server.url}/admin/audit/auditentry/")
    browser.find_element(By.LINK_TEXT, "b-ops").click()
    assert "username=b-ops" in browser.current_url
    assert (
        f"{batch.on_hand} → {batch.on_hand + 11}" in browser.find_element(By.ID, "result_list").text
    )
    assert (
        browser.find_element(By.ID, "audit-csv")
        .get_attribute("href")
        .endswith("export/?username=b-ops")
    )

    browser.get(f"{live_server.url}/admin/orders/order/dashboard/")
    wait_for_title(browser, "Operations dashboard")
    assert csp_violations(browser) == []
