"""Staff changes in admin land in the audit trail with who, when, what before and after,
and why; the pipeline's own writes do not; and nobody can change or delete the trail."""

from __future__ import annotations

import csv
import datetime
import io

import pytest
from django.contrib.auth.models import User
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.context import acting
from audit.models import AuditEntry, AuditRecordError, ShipmentAudit, StockBatchAudit
from audit.selectors import audit_entries
from audit.tests.conftest import postgresql_only, staff_client
from core.models import ApiClient
from core.tests.factories import ApiClientFactory
from inventory.models import StockBatch
from logistics.models import Shipment
from orders.models import Order

pytestmark = pytest.mark.django_db


def _entries(label: str, pk: object) -> list[AuditEntry]:
    return list(audit_entries(label=label, object_id=str(pk)).order_by("pgh_id"))


def _batch_form(batch: StockBatch, **changes: object) -> dict[str, object]:
    return {
        "product": batch.product_id,
        "center": batch.center_id,
        "batch": batch.batch,
        "expires_on": batch.expires_on.isoformat(),
        "on_hand": batch.on_hand,
        **changes,
    }


@postgresql_only
def test_an_ops_edit_of_a_shipment_and_of_a_stock_batch_is_in_the_trail(confirmed):
    shipment = Shipment.objects.get(order_id=confirmed.pk)
    batch = StockBatch.objects.filter(product__sku="PARA-500").order_by("pk").first()
    before_on_hand = batch.on_hand
    ops = staff_client("olga", "ops", "inventory")

    moved = ops.post(
        "/admin/logistics/shipment/",
        {
            "action": "move_by_hand",
            "_selected_action": [shipment.pk],
            "confirm": "yes",
            "status": "picked_up",
            "note": "courier scanned it late",
        },
        follow=True,
    )
    assert b"Moved: 1" in moved.content
    edited = ops.post(
        f"/admin/inventory/stockbatch/{batch.pk}/change/",
        _batch_form(batch, on_hand=before_on_hand + 7),
    )
    assert edited.status_code == 302

    [move] = _entries("logistics.shipment", shipment.pk)
    assert (move.pgh_label, move.username, move.user_id) == (
        "change",
        "olga",
        User.objects.get(username="olga").pk,
    )
    assert move.pgh_diff["status"] == ["booked", "picked_up"]
    assert move.action == "Move selected shipments by hand"
    assert move.reason == "Move selected shipments by hand: courier scanned it late"
    [edit] = _entries("inventory.stockbatch", batch.pk)
    assert (edit.pgh_label, edit.username, edit.action) == ("change", "olga", "edit")
    assert edit.pgh_diff["on_hand"] == [before_on_hand, before_on_hand + 7]

    # Both are in the list ops browse, filtered by user, with before → after shown.
    page = ops.get("/admin/audit/auditentry/", {"username": "olga"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "courier scanned it late" in text
    assert f"{before_on_hand} → {before_on_hand + 7}" in text
    assert "booked → picked_up" in text
    an_hour_ago = (timezone.now() - datetime.timedelta(hours=1)).isoformat()
    by_model_and_date = ops.get(
        "/admin/audit/auditentry/",
        {"model": "inventory.stockbatch", "pgh_created_at__gte": an_hour_ago},
    ).content.decode()
    assert f"{before_on_hand} → {before_on_hand + 7}" in by_model_and_date
    assert "courier scanned it late" not in by_model_and_date
    # Each object's change page links its own trail.
    change_page = ops.get(f"/admin/logistics/shipment/{shipment.pk}/change/").content.decode()
    assert f"?object=logistics.shipment%3A{shipment.pk}" in change_page
    own = ops.get("/admin/audit/auditentry/", {"object": f"logistics.shipment:{shipment.pk}"})
    assert "courier scanned it late" in own.content.decode()
    assert f"{before_on_hand} → {before_on_hand + 7}" not in own.content.decode()


@postgresql_only
def test_an_admin_cancel_is_in_the_trail_with_its_user_and_reason(
    confirmed, django_capture_on_commit_callbacks
):
    ops = staff_client("oscar", "ops")
    form = {"action": "cancel_orders", "_selected_action": [str(confirmed.pk)]}
    with django_capture_on_commit_callbacks(execute=True):
        done = ops.post(
            "/admin/orders/order/",
            {**form, "confirm": "yes", "note": "customer called"},
            follow=True,
        )
    assert b"Cancelled: 1" in done.content
    changes = [e for e in _entries("orders.order", confirmed.pk) if "status" in e.pgh_diff]
    assert [e.pgh_diff["status"] for e in changes] == [["confirmed", "cancelled"]]
    assert changes[0].username == "oscar"
    assert changes[0].reason == "Cancel selected orders: customer called"

    # The export of the filtered list carries the same, field by field.
    export = ops.get("/admin/audit/auditentry/export/", {"model": "orders.order"})
    assert export["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    status_rows = [r for r in rows if r["field"] == "status"]
    assert [(r["user"], r["before"], r["after"], r["object_id"]) for r in status_rows] == [
        ("oscar", "confirmed", "cancelled", str(confirmed.pk))
    ]
    assert status_rows[0]["reason"] == "Cancel selected orders: customer called"
    assert {r["model"] for r in rows} == {"orders.order"}


@postgresql_only
def test_a_change_made_while_acting_is_in_the_trail_and_none_after():
    api_client = ApiClientFactory(name="shop-before")

    with acting("command-line (tester)", "rename_client", "rename_client: asked by the shop"):
        ApiClient.objects.filter(pk=api_client.pk).update(name="shop-after")
    ApiClient.objects.filter(pk=api_client.pk).update(name="shop-later")

    [entry] = _entries("core.apiclient", api_client.pk)
    assert (entry.pgh_label, entry.username, entry.user_id, entry.url) == (
        "change",
        "command-line (tester)",
        None,
        None,
    )
    assert (entry.action, entry.reason) == ("rename_client", "rename_client: asked by the shop")
    assert entry.pgh_diff["name"] == ["shop-before", "shop-after"]


@postgresql_only
def test_the_pipeline_and_the_api_write_nothing_to_the_trail(confirmed):
    # The order was placed, reserved, charged and booked: none of it by staff.
    assert not audit_entries().exists()
    ops = staff_client("ona", "ops", "inventory")
    batch = StockBatch.objects.order_by("pk").first()
    ops.post(f"/admin/inventory/stockbatch/{batch.pk}/change/", _batch_form(batch, on_hand=999))
    # The admin request is over: the same connection no longer acts for ona.
    StockBatch.objects.filter(pk=batch.pk).update(on_hand=998)
    assert [e.pgh_diff["on_hand"] for e in _entries("inventory.stockbatch", batch.pk)] == [
        [batch.on_hand, 999]
    ]


@postgresql_only
def test_audit_rows_are_never_changed_or_deleted(confirmed):
    ops = staff_client("otto", "ops", "inventory")
    batch = StockBatch.objects.order_by("pk").first()
    ops.post(f"/admin/inventory/stockbatch/{batch.pk}/change/", _batch_form(batch, on_hand=5))
    row = StockBatchAudit.objects.get(pgh_label="change")

    for refused in (
        lambda: row.delete(),
        lambda: StockBatchAudit.objects.all().delete(),
        lambda: StockBatchAudit.objects.update(on_hand=0),
        lambda: row.save(),
    ):
        with pytest.raises(AuditRecordError):
            refused()
    # Around the ORM, the database's own trigger refuses.
    for statement in (
        "DELETE FROM audit_stockbatchaudit",
        "UPDATE audit_stockbatchaudit SET on_hand = 0",
    ):
        with (
            pytest.raises(DatabaseError, match="Cannot update or delete"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert StockBatchAudit.objects.get(pk=row.pk).on_hand == 5
    assert ShipmentAudit.objects.count() == 0

    # Admin: no add, change or delete, for ops and superusers alike.
    root = staff_client("root", superuser=True)
    entry = audit_entries(label="inventory.stockbatch").get()
    for client in (ops, root):
        listing = client.get("/admin/audit/auditentry/")
        assert listing.status_code == 200
        assert b'name="action"' not in listing.content  # no delete action
        for url in ("/admin/audit/auditentry/add/", f"/admin/audit/auditentry/{entry.pk}/delete/"):
            assert client.get(url).status_code in (403, 404), url
            assert client.post(url, {"post": "yes"}).status_code in (403, 404), url
    assert StockBatchAudit.objects.count() == 2  # the "before" and "change" rows


def test_only_ops_and_superusers_see_the_trail(demo_catalog):
    for role, status in (("ops", 200), ("pharmacist", 403), ("inventory", 403)):
        client = staff_client(f"u-{role}", role)
        assert client.get("/admin/audit/auditentry/").status_code == status, role
        assert client.get("/admin/audit/auditentry/export/").status_code == status, role
    assert staff_client("boss", superuser=True).get("/admin/audit/auditentry/").status_code == 200


def test_admin_edits_work_whatever_the_database(demo_catalog):
    """On SQLite there are no triggers: the same admin requests work and the list says so."""
    client = staff_client("ivy", "inventory", "ops")
    batch = StockBatch.objects.order_by("pk").first()
    response = client.post(
        f"/admin/inventory/stockbatch/{batch.pk}/change/", _batch_form(batch, on_hand=3)
    )
    assert response.status_code == 302
    assert StockBatch.objects.get(pk=batch.pk).on_hand == 3
    listing = client.get("/admin/audit/auditentry/").content.decode()
    if connection.vendor == "postgresql":
        assert "3" in listing and "ivy" in listing
    else:
        assert "PostgreSQL only" in listing
    assert Order.objects.count() == 0
