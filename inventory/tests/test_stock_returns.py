"""Units that came back from an order: restocked into their batch when they can be sold
again, written off (cold chain, short expiry, or as ops decided) otherwise; one record
per cause and batch, never deleted, listed and exported read-only in the admin."""

import csv
import datetime
import io
import uuid

import pytest
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY

from inventory.enums import StockReturnOutcome, WriteOffReason
from inventory.models import (
    FulfillmentCenter,
    Product,
    StockBatch,
    StockRecordError,
    StockReturn,
    StockWriteOff,
)
from inventory.selectors import stock_returns_of
from inventory.services import UnknownBatchError, catalog_load, stock_take_back
from inventory.tests.factories import CenterFactory, ProductFactory, StockBatchFactory
from inventory.tests.test_concurrency import race

pytestmark = pytest.mark.django_db
WRITE_OFFS = "/admin/inventory/stockwriteoff/"
RETURNS = "/admin/inventory/stockreturn/"


def in_days(n: int) -> datetime.date:
    return datetime.date.today() + datetime.timedelta(days=n)


def written_off(reason: str) -> float:
    return REGISTRY.get_sample_value("cot_stock_written_off_total", {"reason": reason}) or 0.0


@pytest.fixture
def stock():
    blr = CenterFactory(code="BLR-1", priority=1)
    mum = CenterFactory(code="MUM-1", priority=2, pincode_prefixes=["400"])
    para = ProductFactory(sku="PARA-500")
    insulin = ProductFactory(sku="INSU-GLA", cold_chain=True)
    StockBatchFactory(product=para, center=blr, batch="P1", expires_on=in_days(200), on_hand=10)
    StockBatchFactory(product=para, center=blr, batch="P2", expires_on=in_days(300), on_hand=10)
    StockBatchFactory(product=para, center=mum, batch="P1", expires_on=in_days(200), on_hand=10)
    # Expires within the shelf-life floor (30 days): reservations no longer pick it.
    StockBatchFactory(product=para, center=blr, batch="SHORT", expires_on=in_days(10), on_hand=4)
    StockBatchFactory(product=insulin, center=blr, batch="I1", expires_on=in_days(200), on_hand=5)


def on_hand(center: str, batch: str) -> int:
    return StockBatch.objects.get(center__code=center, batch=batch).on_hand


def take_back(batch="P1", *, sku="PARA-500", center="BLR-1", quantity=2, **kwargs):
    kwargs.setdefault("order_id", uuid.UUID(int=1))
    kwargs.setdefault("reference", "rto:ship-1")
    return stock_take_back(center=center, sku=sku, batch=batch, quantity=quantity, **kwargs)


def test_restock_adds_to_on_hand_of_that_batch_only(stock, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        record = take_back("P1", quantity=3)

    assert (record.outcome, record.reason, record.quantity) == ("restocked", "", 3)
    assert on_hand("BLR-1", "P1") == 13
    assert on_hand("BLR-1", "P2") == 10  # same product and centre, other batch
    assert on_hand("MUM-1", "P1") == 10  # same batch code, other centre


@pytest.mark.parametrize(
    ("sku", "batch", "reason"),
    [("INSU-GLA", "I1", "cold_chain"), ("PARA-500", "SHORT", "short_expiry")],
)
def test_cold_chain_and_short_expiry_are_written_off_and_leave_stock_alone(
    stock, django_capture_on_commit_callbacks, sku, batch, reason
):
    before, counted = on_hand("BLR-1", batch), written_off(reason)

    with django_capture_on_commit_callbacks(execute=True):
        record = take_back(batch, sku=sku, quantity=2)

    assert (record.outcome, record.reason) == ("written_off", reason)
    assert on_hand("BLR-1", batch) == before
    assert list(StockWriteOff.objects.values_list("batch__batch", "quantity")) == [(batch, 2)]
    assert written_off(reason) == counted + 2  # units, counted once committed


def test_an_explicit_reason_wins_over_the_rules(stock, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        damaged = take_back(
            "P1",
            reference="return:r-1",
            write_off_reason=WriteOffReason.DAMAGED,
            by="ops-1",
            note="crushed box",
        )
        # Inspected and fit for sale would still be a cold-chain product: ops decide.
        wrong = take_back(
            "I1", sku="INSU-GLA", reference="return:r-1", write_off_reason="wrong_item"
        )

    assert (damaged.outcome, damaged.reason, damaged.by, damaged.note) == (
        "written_off",
        "damaged",
        "ops-1",
        "crushed box",
    )
    assert wrong.reason == "wrong_item"
    assert on_hand("BLR-1", "P1") == 10


def test_taking_back_twice_records_and_restocks_once(stock, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = take_back("P1", quantity=3)
        again = take_back("P1", quantity=3)
        written = take_back("SHORT", quantity=1)
        written_again = take_back("SHORT", quantity=1)

    assert (again.pk, written_again.pk) == (first.pk, written.pk)
    assert on_hand("BLR-1", "P1") == 13
    assert StockReturn.objects.count() == 2
    assert len(callbacks) == 1  # one write-off counted
    # Another cause for the same batch is another record.
    take_back("P1", quantity=1, reference="return:r-9")
    assert on_hand("BLR-1", "P1") == 14


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_take_back_restock_once(stock):
    records = race(8, lambda i: take_back("P1", quantity=3).pk)

    assert len(set(records)) == 1
    assert on_hand("BLR-1", "P1") == 13


def test_unknown_batch_and_bad_arguments_are_refused(stock):
    with pytest.raises(UnknownBatchError, match="'NOPE' of 'PARA-500' at centre 'BLR-1'"):
        take_back("NOPE")
    with pytest.raises(UnknownBatchError):
        take_back("P1", center="DEL-1")
    with pytest.raises(ValueError, match="quantity"):
        take_back("P1", quantity=0)
    with pytest.raises(ValueError, match="write-off reason"):
        take_back("P1", write_off_reason="lost")
    assert StockReturn.objects.count() == 0
    assert on_hand("BLR-1", "P1") == 10


def test_records_are_never_deleted_and_the_database_keeps_them_consistent(stock):
    record = take_back("P1")

    with pytest.raises(StockRecordError):
        record.delete()
    with pytest.raises(StockRecordError):
        StockReturn.objects.all().delete()
    with pytest.raises(StockRecordError):
        StockWriteOff.objects.all().delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        # A write-off must say why.
        StockReturn.objects.create(
            batch=record.batch,
            quantity=1,
            outcome=StockReturnOutcome.WRITTEN_OFF,
            order_id=uuid.uuid4(),
            reference="x",
        )
    assert StockReturn.objects.count() == 1


def test_the_order_timeline_lists_what_came_back(stock):
    order_id = uuid.uuid4()
    take_back("P1", order_id=order_id, quantity=1)
    take_back("I1", sku="INSU-GLA", order_id=order_id, quantity=1)
    take_back("P2", order_id=uuid.uuid4(), reference="rto:ship-2")

    lines = stock_returns_of(order_id=order_id)

    assert [(r.center, r.sku, r.batch, r.outcome, r.reason) for r in lines] == [
        ("BLR-1", "PARA-500", "P1", "restocked", ""),
        ("BLR-1", "INSU-GLA", "I1", "written_off", "cold_chain"),
    ]


def test_catalog_file_sets_cold_chain_and_defaults_it_to_false():
    product = {"sku": "INSU-GLA", "name": "Insulin glargine", "price": "700.00", "schedule": "h"}
    catalog_load({"products": [{**product, "cold_chain": True}, {**product, "sku": "PARA-1"}]})
    assert Product.objects.get(sku="INSU-GLA").cold_chain is True
    assert Product.objects.get(sku="PARA-1").cold_chain is False


def login(role: str) -> Client:
    # The role groups are synced after every migrate (and after a test flush).
    user = User.objects.create_user(f"u-{role}", password="pw-123456789", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def returns(stock):
    take_back("P1", quantity=3, reference="rto:ship-1")
    take_back("I1", sku="INSU-GLA", quantity=1, reference="rto:ship-1")
    take_back("SHORT", quantity=2, reference="return:r-7", order_id=uuid.UUID(int=7))
    take_back(
        "P1",
        center="MUM-1",
        reference="return:r-8",
        write_off_reason="damaged",
        by="ops-1",
        note="=HYPERLINK(1)",
    )


def rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.parametrize("role", ["inventory", "ops"])
def test_write_off_list_and_csv_export_follow_the_filters(returns, role):
    client = login(role)

    page = client.get(WRITE_OFFS)
    assert page.status_code == 200
    assert page.context["cl"].result_count == 3  # the restock is not a write-off

    def shown(url: str) -> int:
        response = client.get(url)
        assert response.status_code == 200
        return response.context["cl"].result_count

    assert shown(f"{WRITE_OFFS}?reason=cold_chain") == 1
    mum = FulfillmentCenter.objects.get(code="MUM-1").pk
    assert shown(f"{WRITE_OFFS}?batch__center__id__exact={mum}") == 1
    this_year = timezone.now().year
    assert shown(f"{WRITE_OFFS}?created_at__year={this_year}") == 3
    assert shown(f"{WRITE_OFFS}?created_at__year={this_year - 1}") == 0
    assert shown(f"{WRITE_OFFS}?q=SHORT") == 1
    assert shown(f"{WRITE_OFFS}?q=return:r-7") == 1
    assert b"Export CSV" in page.content

    header, *lines = rows(client.get(f"{WRITE_OFFS}export-csv/"))  # newest first
    assert header == [
        "batch", "sku", "centre", "quantity", "outcome", "reason",
        "order", "reference", "by", "at", "note",
    ]  # fmt: skip
    assert [line[:9] for line in lines] == [
        ["P1", "PARA-500", "MUM-1", "2", "written_off", "damaged",
         str(uuid.UUID(int=1)), "return:r-8", "ops-1"],
        ["SHORT", "PARA-500", "BLR-1", "2", "written_off", "short_expiry",
         str(uuid.UUID(int=7)), "return:r-7", ""],
        ["I1", "INSU-GLA", "BLR-1", "1", "written_off", "cold_chain",
         str(uuid.UUID(int=1)), "rto:ship-1", ""],
    ]  # fmt: skip
    # A note that a spreadsheet would run as a formula is exported as text.
    assert lines[0][10] == "'=HYPERLINK(1)"

    filtered = rows(client.get(f"{WRITE_OFFS}export-csv/?reason=short_expiry"))
    assert [line[0] for line in filtered[1:]] == ["SHORT"]
    everything = rows(client.get(f"{RETURNS}export-csv/?outcome=restocked"))
    assert [(line[0], line[4]) for line in everything[1:]] == [("P1", "restocked")]


def test_nobody_adds_changes_or_deletes_records_through_the_admin(returns):
    record = StockWriteOff.objects.get(reason="damaged")
    superuser = Client()
    superuser.force_login(User.objects.create_superuser("root", password="pw-123456789"))
    for client in (login("inventory"), superuser):
        assert client.get(f"{RETURNS}{record.pk}/change/").status_code == 200  # view only
        assert client.get(f"{WRITE_OFFS}add/").status_code == 403
        assert client.post(f"{WRITE_OFFS}{record.pk}/delete/", {"post": "yes"}).status_code == 403
        edit = client.post(f"{RETURNS}{record.pk}/change/", {"quantity": 9, "note": "edited"})
        assert edit.status_code == 403
        client.post(
            WRITE_OFFS,
            {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"},
        )
    record.refresh_from_db()
    assert (record.quantity, record.note) == (2, "=HYPERLINK(1)")
    assert StockReturn.objects.count() == 4


def test_staff_without_the_role_see_nothing(returns):
    client = login("pharmacist")
    assert client.get(WRITE_OFFS).status_code == 403
    assert client.get(f"{WRITE_OFFS}export-csv/").status_code == 403
