"""Admin pages render for the roles that use them, and show each role only its part."""

import datetime

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from core.tests.factories import ApiClientFactory
from logistics.models import Shipment
from orders.models import Order
from orders.roles import roles_sync
from orders.tests.factories import place_order

pytestmark = pytest.mark.django_db
PAGES = [
    "/admin/orders/order/",
    "/admin/inventory/product/",
    "/admin/inventory/stockbatch/",
    "/admin/inventory/reservation/",
    "/admin/prescriptions/prescription/",
    "/admin/payments/payment/",
    "/admin/logistics/shipment/",
    "/admin/notifications/notification/",
    "/admin/core/apiclient/",
    "/admin/core/clientapikey/",
]


@pytest.fixture
def order(demo_catalog):
    return place_order(ApiClientFactory(), items=[("PARA-500", 1)])


def login(role=None):
    user = User.objects.create_user(
        f"u-{role}", password="pw-123456789", is_staff=True, is_superuser=role is None
    )
    if role:
        roles_sync()
        user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def test_every_page_renders_for_a_superuser(order):
    client = login()
    for page in PAGES:
        assert client.get(page).status_code == 200, page
    page = client.get(f"/admin/orders/order/{order.pk}/change/")
    assert page.status_code == 200
    assert b"order.received" in page.content and b"PARA-500" in page.content


@pytest.mark.parametrize(
    ("role", "allowed", "denied"),
    [
        ("ops", ["/admin/orders/order/", "/admin/payments/payment/"], ["/admin/core/apiclient/"]),
        ("pharmacist", ["/admin/prescriptions/prescription/"], ["/admin/payments/payment/"]),
        ("inventory", ["/admin/inventory/stockbatch/"], ["/admin/orders/order/"]),
    ],
)
def test_roles_see_their_pages_only(order, role, allowed, denied):
    client = login(role)
    for page in allowed:
        assert client.get(page).status_code == 200, page
    for page in denied:
        assert client.get(page).status_code == 403, page


def test_rerun_action_redrives_only_stuck_orders(
    order, simulator, settings, django_capture_on_commit_callbacks
):
    settings.COT_PIPELINE_MODE = "inline"
    client = login("ops")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/orders/order/",
            {"action": "rerun_pipeline", "_selected_action": [str(order.pk)]},
            follow=True,
        )
    assert b"Re-driven: 1" in response.content
    assert Order.objects.get(pk=order.pk).status == "confirmed"


@pytest.fixture
def confirmed(demo_catalog, simulator, settings, django_capture_on_commit_callbacks):
    settings.COT_PIPELINE_MODE = "inline"
    with django_capture_on_commit_callbacks(execute=True):
        order = place_order(ApiClientFactory(), items=[("PARA-500", 2)])
    order.refresh_from_db()
    assert order.status == "confirmed"
    return order


RERUN = b'value="rerun_pipeline"'


@pytest.mark.parametrize(
    ("role", "allowed", "denied", "can_rerun"),
    [
        (
            None,
            ["/admin/orders/order/", "/admin/core/apiclient/", "/admin/inventory/stockbatch/add/"],
            [],
            True,
        ),
        (
            "ops",
            ["/admin/orders/order/", "/admin/payments/payment/", "/admin/logistics/shipment/"],
            ["/admin/core/apiclient/", "/admin/inventory/stockbatch/add/"],
            True,
        ),
        (
            "pharmacist",
            ["/admin/orders/order/", "/admin/prescriptions/prescription/"],
            ["/admin/payments/payment/", "/admin/inventory/stockbatch/add/"],
            False,
        ),
        (
            "inventory",
            ["/admin/inventory/stockbatch/", "/admin/inventory/stockbatch/add/"],
            ["/admin/orders/order/", "/admin/payments/payment/"],
            None,
        ),
    ],
)
def test_each_role_sees_its_pages_and_its_actions(confirmed, role, allowed, denied, can_rerun):
    client = login(role)
    for page in allowed:
        assert client.get(page).status_code == 200, page
    for page in denied:
        assert client.get(page).status_code == 403, page
    order_page = client.get(f"/admin/orders/order/{confirmed.pk}/change/")
    if can_rerun is None:
        assert order_page.status_code == 403
        return
    assert order_page.status_code == 200
    assert (RERUN in client.get("/admin/orders/order/").content) is can_rerun


def test_the_order_page_tells_the_whole_story_with_links(confirmed):
    page = login("ops").get(f"/admin/orders/order/{confirmed.pk}/change/").content.decode()
    shipment = Shipment.objects.get(order_id=confirmed.pk)
    assert "PARA-500" in page
    assert "/admin/payments/payment/" in page and "captured via alpha" in page
    assert f"/admin/logistics/shipment/{shipment.pk}/change/" in page and shipment.awb in page
    assert (
        page.index("order.received")
        < page.index("payment.captured")
        < page.index("order.confirmed")
    )


def test_orders_are_found_by_awb_and_stuck_ones_by_the_in_flight_filter(confirmed):
    stuck = place_order(ApiClientFactory(), items=[("PARA-500", 1)])
    fresh = place_order(ApiClientFactory(), items=[("PARA-500", 1)])
    Order.objects.filter(pk=stuck.pk).update(
        updated_at=timezone.now() - datetime.timedelta(minutes=20)
    )
    client = login("ops")
    awb = Shipment.objects.get(order_id=confirmed.pk).awb

    found = client.get("/admin/orders/order/", {"q": awb}).content.decode()
    assert confirmed.number in found and stuck.number not in found

    listed = client.get("/admin/orders/order/", {"in_flight_minutes": "15"}).content.decode()
    assert stuck.number in listed
    assert fresh.number not in listed and confirmed.number not in listed


def test_the_dashboard_draws_what_happened_for_ops_and_not_for_inventory(confirmed):
    ended = place_order(ApiClientFactory(), items=[("PARA-500", 1)])
    Order.objects.filter(pk=ended.pk).update(status="rejected", failure_reason="out_of_stock")
    place_order(ApiClientFactory(), items=[("PARA-500", 1)])  # in flight

    ops = login("ops")
    assert "/admin/orders/order/dashboard/" in ops.get("/admin/orders/order/").content.decode()
    page = ops.get("/admin/orders/order/dashboard/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "1 confirmed, 1 failed, 1 in flight or on hold" in html
    assert "out_of_stock" in html and "<svg" in html
    assert "<script" not in html.split('id="content-main"')[1]
    assert login("inventory").get("/admin/orders/order/dashboard/").status_code == 403
