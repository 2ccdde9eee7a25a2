"""Admin pages render for the roles that use them, and show each role only its part."""

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from core.tests.factories import ApiClientFactory
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
