"""A pharmacist works the review queue in a real browser: the longest wait first, a claim,
the image beside the lines, one line struck out with a reason, and what follows for the
orders that waited."""

from __future__ import annotations

import datetime
import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from core.tests.factories import ApiClientFactory
from orders.enums import EventType, OrderStatus
from orders.models import Order, OrderEvent
from orders.tests.factories import place_order
from prescriptions.enums import PrescriptionStatus
from prescriptions.models import Prescription
from prescriptions.tests.factories import prescription_with
from tests.browser.conftest import wait_for_title

pytestmark = pytest.mark.django_db(transaction=True)


def png_image() -> bytes:
    """A real one-pixel PNG, so that the browser has something to draw."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture
def screenshot_on_failure(request: Any, browser: Any, tmp_path: Any) -> Iterator[None]:
    """What the browser showed when the test failed, saved beside the test's files."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        path = tmp_path / "failure.png"
        browser.save_screenshot(str(path))
        print(f"screenshot of the failed page: {path}")


def test_a_pharmacist_claims_the_longest_wait_and_strikes_out_one_line(
    live_server,
    staff_login,
    browser,
    screenshot_on_failure,
    demo_catalog,
    simulator,
    settings,
    tmp_path,
):
    settings.COT_PIPELINE_MODE = "inline"
    settings.MEDIA_ROOT = tmp_path
    client = ApiClientFactory()
    lines = [("CEFI-200", 4), ("AMOX-500", 10)]
    pending = PrescriptionStatus.PENDING_REVIEW
    older = prescription_with(lines, client=client, patient_name="Older", status=pending)
    older.image.save("rx.png", io.BytesIO(png_image()))
    newer = prescription_with(lines, client=client, patient_name="Newer", status=pending)

    def hold(prescription: Prescription, items: list[tuple[str, int]], ago: int) -> Order:
        order = place_order(client, items=items, prescription_id=prescription.pk)
        order.refresh_from_db()
        assert order.status == OrderStatus.ON_HOLD
        OrderEvent.objects.filter(order=order, type=EventType.ORDER_ON_HOLD).update(
            at=timezone.now() - datetime.timedelta(minutes=ago)
        )
        return order

    needs_cefixime = hold(older, [("CEFI-200", 2), ("AMOX-500", 10)], ago=120)
    needs_amoxicillin = hold(older, [("AMOX-500", 10)], ago=90)
    hold(newer, [("AMOX-500", 10)], ago=10)

    browser = staff_login("pharmacist")
    browser.get(f"{live_server.url}/admin/prescriptions/prescription/queue/")
    wait_for_title(browser, "Review queue")
    rows = browser.find_elements(By.CSS_SELECTOR, "#review-queue tr.rx-row")
    assert [row.get_attribute("data-prescription") for row in rows] == [
        str(older.pk),
        str(newer.pk),
    ]
    first = rows[0]
    assert "over SLA" in first.text and "over-sla" in first.get_attribute("class")
    assert needs_cefixime.number in first.text and needs_amoxicillin.number in first.text
    assert "over SLA" not in rows[1].text

    first.find_element(By.XPATH, ".//button[normalize-space()='Claim and review']").click()
    wait_for_title(browser, "Review prescription")
    assert "You are reviewing it." in browser.find_element(By.ID, "rx-claim").text
    image = browser.find_element(By.CSS_SELECTOR, "img.rx-image")
    assert browser.execute_script("return arguments[0].naturalWidth", image) == 1

    # The first line's decision has the focus: the pharmacist can start from the keyboard.
    cefixime = older.items.get(sku="CEFI-200")
    focused = browser.switch_to.active_element
    assert focused.get_attribute("name") == f"line-{cefixime.pk}-decision"
    Select(focused).select_by_value("rejected")
    Select(browser.find_element(By.NAME, f"line-{cefixime.pk}-reason")).select_by_value(
        "dose_unclear"
    )
    browser.find_element(By.NAME, "note").send_keys("Cefixime dose not legible")
    browser.find_element(By.XPATH, "//button[normalize-space()='Decide per line']").click()

    wait_for_title(browser, "Review queue")
    assert (
        "approved; struck out: CEFI-200 (dose unclear)"
        in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    )
    rows = browser.find_elements(By.CSS_SELECTOR, "#review-queue tr.rx-row")
    assert [row.get_attribute("data-prescription") for row in rows] == [str(newer.pk)]

    # The prescription's page shows each line's decision; the orders went their ways.
    browser.get(f"{live_server.url}/admin/prescriptions/prescription/{older.pk}/change/")
    page = browser.find_element(By.ID, "content").text
    assert "Dose unclear" in page and "Cefixime dose not legible" in page
    decided = Prescription.objects.get(pk=older.pk)
    assert (decided.status, decided.reviewed_by.username) == ("approved", "b-pharmacist")
    needs_cefixime.refresh_from_db()
    needs_amoxicillin.refresh_from_db()
    assert (needs_cefixime.status, needs_cefixime.failure_reason) == (
        OrderStatus.REJECTED,
        "prescription_rejected",
    )
    assert needs_amoxicillin.status == OrderStatus.CONFIRMED
