"""The inventory team reads the replenishment page in a real browser: most urgent first,
filtered by centre and schedule, the backtest shown, a row's chart drawn, the export link
carrying the filters."""

from __future__ import annotations

import numpy as np
import pytest
from selenium.webdriver.common.by import By

from forecasting.services import forecast_run
from forecasting.tests.factories import history_write, past_days
from tests.browser.conftest import wait_for_title

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_inventory_team_reads_replenishment_and_a_chart(live_server, staff_login, demo_catalog):
    days = past_days(70)
    rng = np.random.default_rng(2)
    history_write(
        {
            ("PARA-500", "BLR-1"): rng.poisson(45, len(days)),
            ("PARA-500", "DEL-1"): rng.poisson(2, len(days)),
            ("AMOX-500", "DEL-1"): rng.poisson(25, len(days)),
        },
        days,
    )
    forecast_run(skus=["PARA-500", "AMOX-500"])

    browser = staff_login("inventory")
    browser.get(f"{live_server.url}/admin/forecasting/replenishment/")
    wait_for_title(browser, "replenishment")
    assert "Forecast as of" in browser.find_element(By.ID, "replenishment-run").text
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    covers = []
    for row in rows:
        cell = row.find_element(By.CSS_SELECTOR, "td.field-cover").text
        lead = int(row.find_element(By.CSS_SELECTOR, "td.field-lead_time_days").text)
        covers.append(float(cell) - lead if cell != "–" else 1e9)
    assert covers == sorted(covers) and len(rows) >= 3
    top = rows[0].text
    assert "Stock-out risk" in top or "Reorder" in top
    assert rows[0].find_element(By.CSS_SELECTOR, "td.field-backtest").text != "–"

    # Filters: the drug schedule (H: AMOX-500 only), then the export link keeps it.
    browser.find_element(By.LINK_TEXT, "Schedule H (prescription)").click()
    wait_for_title(browser, "replenishment")
    skus = {
        r.find_element(By.CSS_SELECTOR, "th.field-sku, td.field-sku").text
        for r in browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    }
    assert skus == {"AMOX-500"}
    export = browser.find_element(By.ID, "replenishment-export").get_attribute("href")
    assert "export.csv?" in export and "schedule=h" in export

    browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr td.field-chart a").click()
    wait_for_title(browser, "AMOX-500")
    chart = browser.find_element(By.CSS_SELECTOR, "#forecast-chart svg")
    assert chart.size["width"] > 500 and chart.size["height"] > 200
    # History bars and the forecast's line and bands are drawn inside it.
    assert len(chart.find_elements(By.CSS_SELECTOR, "path")) > 60
    detail = browser.find_element(By.ID, "replenishment-detail").text
    assert "Backtest MASE" in detail and "Suggested order" in detail
