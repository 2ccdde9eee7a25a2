"""The inventory team's admin: stock per product and centre, expiry and low-stock filters,
and the CSV import that follows `load_catalog`'s rules."""

import datetime

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from inventory.models import StockBatch, StockLevel
from inventory.services import CatalogError, catalog_load_stock_csv
from inventory.tests.factories import CenterFactory, ProductFactory, StockBatchFactory

pytestmark = pytest.mark.django_db
IMPORT = "/admin/inventory/stockbatch/import-csv/"


def login(role):
    # The role groups are synced after every migrate (and after a test flush).
    user = User.objects.create_user(f"u-{role}", password="pw-123456789", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def in_days(n):
    return datetime.date.today() + datetime.timedelta(days=n)


@pytest.fixture
def stock():
    blr = CenterFactory(code="BLR-1", priority=1)
    mum = CenterFactory(code="MUM-1", priority=2, pincode_prefixes=["400"])
    para, ceti = ProductFactory(sku="PARA-500"), ProductFactory(sku="CETI-10")
    StockBatchFactory(product=para, center=blr, batch="P1", expires_on=in_days(20), on_hand=8)
    StockBatchFactory(
        product=para, center=blr, batch="P2", expires_on=in_days(200), on_hand=100, reserved=30
    )
    StockBatchFactory(product=para, center=blr, batch="P0", expires_on=in_days(5), on_hand=0)
    StockBatchFactory(product=para, center=mum, batch="P3", expires_on=in_days(75), on_hand=5)
    StockBatchFactory(product=ceti, center=blr, batch="C1", expires_on=in_days(400), on_hand=500)


def test_stock_per_product_and_centre_sums_batches(stock):
    levels = {
        (s.product.sku, s.center.code): (s.on_hand, s.reserved, s.available, s.nearest_expiry)
        for s in StockLevel.objects.select_related("product", "center")
    }
    assert levels == {
        ("PARA-500", "BLR-1"): (108, 30, 78, in_days(20)),  # P0 is empty: not "on hand"
        ("PARA-500", "MUM-1"): (5, 0, 5, in_days(75)),
        ("CETI-10", "BLR-1"): (500, 0, 500, in_days(400)),
    }


def test_inventory_team_sees_stock_levels_and_filters(stock):
    client = login("inventory")

    page = client.get("/admin/inventory/stocklevel/")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 3

    def shown(url):
        response = client.get(url)
        assert response.status_code == 200
        return response.context["cl"].result_count

    assert shown("/admin/inventory/stocklevel/?low_stock=10") == 1  # PARA at MUM
    assert shown("/admin/inventory/stocklevel/?expires_within=30") == 1  # PARA at BLR
    assert shown("/admin/inventory/stockbatch/?expires_within=30") == 2  # P1, P0
    assert shown("/admin/inventory/stockbatch/?expires_within=90") == 3
    assert shown("/admin/inventory/stockbatch/?low_stock=0") == 1
    assert shown("/admin/inventory/stockbatch/?low_stock=50") == 3
    assert b"Import stock CSV" in client.get("/admin/inventory/stockbatch/").content


def test_csv_import_sets_quantities_and_adds_batches(stock):
    client = login("inventory")
    csv = (
        "center,sku,batch,expires_on,quantity\n"
        "BLR-1,PARA-500,P1,2027-06-30,40\n"
        "\n"
        "MUM-1,CETI-10,NEW,2027-09-30,12\n"
    )
    upload = SimpleUploadedFile("stock.csv", csv.encode(), content_type="text/csv")

    response = client.post(IMPORT, {"file": upload})

    assert response.status_code == 302, response.content
    assert StockBatch.objects.get(batch="P1").on_hand == 40
    assert StockBatch.objects.get(batch="NEW").center.code == "MUM-1"
    assert StockBatch.objects.count() == 6


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ("BLR-1,NOPE,X,2027-06-30,1", "line 3.sku"),
        ("BLR-1,PARA-500,X,2027-02-30,1", "line 3.expires_on"),
        ("BLR-1,PARA-500,X,2027-06-30,-1", "line 3.quantity"),
        ("BLR-1,PARA-500,X,2027-06-30,1.5", "line 3.quantity"),
        ("BLR-1,PARA-500,P2,2027-06-30,29", "line 3.quantity"),  # 30 reserved
        ("BLR-1,PARA-500,X,2027-06-30", "line 3"),
        ("BLR-1,PARA-500,P1,2027-06-30,1", "line 3"),  # the same batch twice
    ],
)
def test_a_bad_csv_line_is_named_and_nothing_changes(stock, line, where):
    csv = f"center,sku,batch,expires_on,quantity\nBLR-1,PARA-500,P1,2027-06-30,1\n{line}\n"
    with pytest.raises(CatalogError) as error:
        catalog_load_stock_csv(text=csv)
    assert error.value.where == where

    response = login("inventory").post(
        IMPORT, {"file": SimpleUploadedFile("s.csv", csv.encode(), content_type="text/csv")}
    )
    assert response.status_code == 200
    assert f"bad entry {where}" in response.content.decode()
    assert StockBatch.objects.get(batch="P1").on_hand == 8
    assert StockBatch.objects.count() == 5


def test_csv_needs_the_columns_and_utf8(stock):
    with pytest.raises(CatalogError, match="header"):
        catalog_load_stock_csv(text="centre,sku,batch,expires_on,quantity\n")
    response = login("inventory").post(
        IMPORT, {"file": SimpleUploadedFile("s.csv", b"\xff\xfe\x00", content_type="text/csv")}
    )
    assert response.status_code == 200 and b"not UTF-8" in response.content


def test_ops_may_view_stock_but_not_import(stock):
    client = login("ops")
    assert client.get("/admin/inventory/stocklevel/").status_code == 200
    assert client.get(IMPORT).status_code == 403
    assert b"Import stock CSV" not in client.get("/admin/inventory/stockbatch/").content
