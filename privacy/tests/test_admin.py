"""Who may use the customer data page, and what a refused erasure looks like (the page
itself is driven in a real browser in tests/browser/test_privacy_admin.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from audit.selectors import audit_entries
from audit.tests.conftest import postgresql_only
from orders.models import Order
from orders.services.cancellation import CLIENT, order_cancel
from orders.tests.factories import place_order
from orders.tests.test_admin import login
from privacy.models import PrivacyRequest

pytestmark = pytest.mark.django_db
PAGE = "/admin/privacy/privacyrequest/customer/"


@pytest.fixture
def order(demo_catalog):
    from core.tests.factories import ApiClientFactory

    return place_order(ApiClientFactory(name="web-shop"), items=[("PARA-500", 1)])


def test_only_ops_may_export_or_erase(order):
    for role in ("pharmacist", "inventory"):
        client = login(role)
        assert client.get(PAGE).status_code == 403, role
        body = {"client": "web-shop", "customer_id": order.customer_id, "confirm": "yes"}
        assert client.post(f"{PAGE}export/", body).status_code == 403, role
        assert client.post(f"{PAGE}erase/", body).status_code == 403, role
    assert not PrivacyRequest.objects.exists()
    ops = login("ops")
    page = ops.get(PAGE, {"client": "web-shop", "customer_id": order.customer_id})
    assert page.status_code == 200 and order.number in page.content.decode()
    assert ops.get("/admin/privacy/privacyrequest/").status_code == 200


def test_erasing_a_customer_with_an_order_in_progress_is_refused_and_changes_nothing(order):
    ops = login("ops")
    body = {"client": "web-shop", "customer_id": order.customer_id, "confirm": "yes"}

    confirm = ops.get(f"{PAGE}erase/", body)
    assert "Orders still in progress" in confirm.content.decode()
    assert 'value="Erase"' not in confirm.content.decode()
    refused = ops.post(f"{PAGE}erase/", body, follow=True)

    assert "Not erased: orders still in progress" in refused.content.decode()
    assert order.number in refused.content.decode()
    assert Order.objects.get(pk=order.pk).delivery_address["name"] == "A. Rao"
    assert not PrivacyRequest.objects.exists()
    # A bad lookup is a form error, not a failure.
    assert ops.get(PAGE, {"client": "nobody", "customer_id": ""}).status_code == 200
    assert ops.post(f"{PAGE}export/", {"client": "nobody"}).status_code == 302


@postgresql_only
def test_an_erasure_in_admin_is_in_the_audit_trail_with_the_ops_user(order):
    order_cancel(order=order, by=CLIENT, actor="client:web-shop")
    ops = login("ops")
    body = {"client": "web-shop", "customer_id": order.customer_id, "confirm": "yes"}

    assert ops.post(f"{PAGE}erase/", body).status_code == 302

    [request] = PrivacyRequest.objects.all()
    [entry] = audit_entries(label="privacy.privacyrequest", object_id=str(request.pk))
    assert (entry.pgh_label, entry.username, entry.user_id) == (
        "add",
        "u-ops",
        User.objects.get(username="u-ops").pk,
    )
    assert entry.url == f"{PAGE}erase/"
    # Listed in the trail under the model's own name, with who made it.
    page = ops.get("/admin/audit/auditentry/", {"model": "privacy.privacyrequest"})
    text = page.content.decode()
    assert f"privacy request {request.pk}" in text and "u-ops" in text
    assert "Privacy request" in text  # the model filter offers it
