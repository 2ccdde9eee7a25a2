"""A customer's data rights through the commands, on the real database: the export holds
everything about them and nothing about anyone else; the erasure leaves none of their
names, phone, address or notes in a dump of the whole database except in the records the
law keeps, which it lists; it is refused while an order of theirs is in progress."""

from __future__ import annotations

import base64
import getpass
import io
import json

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEntry
from audit.selectors import audit_entries, audit_trail_available
from core.tests.factories import ApiClientFactory
from orders.tests.factories import place_order
from privacy.models import PrivacyRequest
from privacy.tests.conftest import (
    ADDRESS,
    CONTACT_VALUES,
    EMAIL,
    NAME,
    PATIENT,
    PHONE,
    PNG,
    VPA,
)
from privacy.tests.search import columns_holding, database_dump, snapshot, tables_holding

KEPT_TABLES = {"prescriptions_prescription", "prescriptions_h1registerentry"}


def trail_of(request: PrivacyRequest) -> list[AuditEntry]:
    return list(audit_entries(label="privacy.privacyrequest", object_id=str(request.pk)))


def assert_recorded_by_command(request: PrivacyRequest, command: str) -> None:
    """The request is in the audit trail as added by whoever ran `command`."""
    if not audit_trail_available():
        return  # SQLite: no triggers, no trail
    [entry] = trail_of(request)
    assert (entry.pgh_label, entry.user_id, entry.action) == ("add", None, command)
    assert entry.username == f"command-line ({getpass.getuser()})"
    assert entry.reason == f"{command}: customer {request.customer_id} of privacy-shop"


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_the_export_holds_the_customer_s_orders_prescriptions_and_messages(history):
    # Someone else: the same customer id at another client, another customer here.
    place_order(ApiClientFactory(), items=[("PARA-500", 1)], customer_id=history.customer_id)
    place_order(history.client, items=[("PARA-500", 1)], customer_id="C-SOMEONE-ELSE")

    document = json.loads(run("customer_export", history.client.name, history.customer_id))

    assert (document["schema"], document["schema_version"]) == ("cot.customer_export", 1)
    assert (document["client"], document["customer_id"]) == ("privacy-shop", "C-PRIV-77")
    assert [o["number"] for o in document["orders"]] == [o.number for o in history.orders]
    delivered = document["orders"][0]
    assert delivered["delivery_address"] == ADDRESS
    assert [i["sku"] for i in delivered["items"]] == ["CEFI-200"]
    assert "order.delivered" in [e["type"] for e in delivered["events"]]
    assert delivered["shipments"][0]["status"] == "delivered"
    [prescription] = document["prescriptions"]
    assert prescription["patient_name"] == PATIENT
    assert base64.b64decode(prescription["image"]["base64"]) == PNG
    assert {m["to"] for m in document["messages"]} == {PHONE, EMAIL}
    assert any(NAME.split()[0] in m["text"] for m in document["messages"])
    assert {m["order_id"] for m in document["messages"]} == {str(o.pk) for o in history.orders}
    assert [r["refund_vpa"] for r in document["returns"]] == [VPA]
    assert [e["patient_name"] for e in document["h1_register"]] == [PATIENT]
    assert {p["order_id"] for p in document["payments"]} == {str(o.pk) for o in history.orders}
    assert {s["order_id"] for s in document["shipments"]} == {str(o.pk) for o in history.orders}
    deliveries = document["webhook_deliveries"]
    assert deliveries and {d["status"] for d in deliveries} == {"delivered"}
    assert {d["order_id"] for d in deliveries} == {str(o.pk) for o in history.orders}
    assert document["erasures"] == []
    [request] = PrivacyRequest.objects.all()
    assert (request.kind, request.orders, request.prescriptions) == ("export", 3, 1)
    assert request.requested_by.startswith("command:")
    assert_recorded_by_command(request, "customer_export")


@pytest.mark.django_db(transaction=True)
def test_erasure_leaves_no_trace_in_a_database_dump_but_the_records_the_law_keeps(history):
    before = database_dump()
    for value in (*CONTACT_VALUES, PATIENT):
        # The test's own proof that it can fail: every value is in the dump to begin with.
        assert tables_holding(before, value), value
    assert {"orders_order", "notifications_notification", "orders_orderevent"} <= tables_holding(
        before, PHONE
    ) | tables_holding(before, "ring Zephyrine")

    out = run("customer_erase", history.client.name, history.customer_id)

    after = database_dump()
    for value in CONTACT_VALUES:
        assert tables_holding(after, value) == set(), value
    # The patient's name stays only where the law keeps it, and the erasure says so.
    assert tables_holding(after, PATIENT) == KEPT_TABLES
    assert f"prescription {history.prescription.pk}" in out
    assert f"H1 register {history.delivered.number} CEFI-200" in out
    [request] = PrivacyRequest.objects.filter(kind="erasure")
    assert {k["record"].split()[0] for k in request.kept} == {"prescription", "H1"}
    assert all(k["until"] > "2026" and k["why"] for k in request.kept)
    assert PATIENT not in json.dumps(request.kept)
    assert history.prescription.image.storage.exists(history.prescription.image.name)
    assert_recorded_by_command(request, "customer_erase")

    # Again: nothing left to change.
    state = snapshot()
    run("customer_erase", history.client.name, history.customer_id)
    again = PrivacyRequest.objects.filter(kind="erasure").order_by("created_at").last()
    assert again.redacted == {} and again.kept == request.kept
    state_after = snapshot()
    for requests in ("privacy.PrivacyRequest", "privacy.PrivacyRequestAudit"):
        state_after.pop(requests), state.pop(requests)
    assert state_after == state
    # The export now shows what is left, and the erasure.
    document = json.loads(run("customer_export", history.client.name, history.customer_id))
    assert document["orders"][0]["delivery_address"]["name"] == "[redacted]"
    assert len(document["erasures"]) == 2


@pytest.mark.django_db
def test_erasure_is_refused_while_an_order_is_in_progress(history):
    waiting = place_order(history.client, items=[("PARA-500", 1)], customer_id=history.customer_id)
    assert waiting.status == "received"

    with pytest.raises(CommandError, match=f"in progress.*{waiting.number}"):
        run("customer_erase", history.client.name, history.customer_id)

    assert "orders.Order.delivery_address" in columns_holding(PHONE)
    assert not PrivacyRequest.objects.exists()
    with pytest.raises(CommandError, match="no client named 'nobody'"):
        run("customer_erase", "nobody", history.customer_id)
