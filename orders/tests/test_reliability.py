"""The attempt cap (`needs_attention`), the sweeper's respect for it, and the test-only
fault injection being inert unless set. Inline mode, real database and simulator; the
same faults against the live stack are in tests/e2e/test_chaos.py."""

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from core.tests.factories import ApiClientFactory
from orders.enums import OrderStatus, Step
from orders.models import Order, OrderStep
from orders.pipeline import run_inline
from orders.tasks import sweep_stuck_orders
from orders.tests.factories import place_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(demo_catalog, simulator, settings):
    settings.COT_PIPELINE_MODE = "inline"
    return ApiClientFactory()


def events(order):
    return list(order.events.values_list("type", flat=True))


def test_a_step_past_the_attempt_cap_flags_the_order_once_and_stops(client, simulator, settings):
    settings.COT_STEP_MAX_ATTEMPTS = 3
    order = place_order(client, items=[("PARA-500", 1)])
    # Three runs of the stock step that never finished (a worker killed each time).
    OrderStep.objects.create(order=order, step=Step.STOCK, attempts=3)

    run_inline(order.pk)
    run_inline(order.pk)  # a redelivery after the flag: nothing runs, nothing is counted

    order.refresh_from_db()
    assert order.needs_attention and order.status == OrderStatus.PROCESSING
    assert events(order).count("order.needs_attention") == 1
    event = order.events.get(type="order.needs_attention")
    assert event.data == {"step": "stock", "attempts": 3}
    assert OrderStep.objects.get(order=order, step=Step.STOCK).attempts == 4
    assert simulator.ledger()["charges"] == []


def test_under_the_cap_the_order_completes(client, settings):
    settings.COT_STEP_MAX_ATTEMPTS = 3
    order = place_order(client, items=[("PARA-500", 1)])
    OrderStep.objects.create(order=order, step=Step.STOCK, attempts=2)
    run_inline(order.pk)
    order.refresh_from_db()
    assert (order.status, order.needs_attention) == (OrderStatus.CONFIRMED, False)


def test_the_sweeper_skips_flagged_orders(client, settings, django_capture_on_commit_callbacks):
    settings.COT_STUCK_ORDER_SECONDS = 0
    flagged = place_order(client, items=[("PARA-500", 1)])
    Order.objects.filter(pk=flagged.pk).update(needs_attention=True)
    stuck = place_order(client, items=[("PARA-500", 1)], customer_id="C-2")
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_stuck_orders() == 1
    assert Order.objects.get(pk=stuck.pk).status == OrderStatus.CONFIRMED
    assert Order.objects.get(pk=flagged.pk).status == OrderStatus.RECEIVED


def test_fault_injection_is_inert_unless_set(client, settings, django_capture_on_commit_callbacks):
    assert settings.COT_FAULT_INJECTION == []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        order = place_order(client, items=[("PARA-500", 1)])
    assert callbacks  # the pipeline was handed the order
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CONFIRMED

    settings.COT_FAULT_INJECTION = ["after_commit_before_enqueue"]
    with django_capture_on_commit_callbacks(execute=True):
        lost = place_order(client, items=[("PARA-500", 1)], customer_id="C-2")
    # Committed, never enqueued: what the sweeper exists for.
    assert Order.objects.get(pk=lost.pk).status == OrderStatus.RECEIVED
    settings.COT_STUCK_ORDER_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True):
        sweep_stuck_orders()
    assert Order.objects.get(pk=lost.pk).status == OrderStatus.CONFIRMED


def test_admin_lists_filters_and_clears_flagged_orders(
    client, settings, django_capture_on_commit_callbacks
):
    flagged = place_order(client, items=[("PARA-500", 1)])
    OrderStep.objects.create(order=flagged, step=Step.STOCK, attempts=30)
    Order.objects.filter(pk=flagged.pk).update(needs_attention=True)
    other = place_order(client, items=[("PARA-500", 1)], customer_id="C-2")
    ops = User.objects.create_user("ops-1", password="pw", is_staff=True)
    ops.groups.add(Group.objects.get(name="ops"))

    browser = Client()
    browser.force_login(ops)
    url = reverse("admin:orders_order_changelist")
    page = browser.get(url, {"needs_attention__exact": "1"})
    assert page.status_code == 200
    assert flagged.number in page.text and other.number not in page.text

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            url,
            {"action": "clear_attention_and_rerun", "_selected_action": [flagged.pk, other.pk]},
        )
    assert response.status_code == 302
    flagged.refresh_from_db()
    assert (flagged.needs_attention, flagged.status) == (False, OrderStatus.CONFIRMED)
    assert Order.objects.get(pk=other.pk).status == OrderStatus.RECEIVED
