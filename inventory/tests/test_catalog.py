import copy
import json

import pytest
from django.core.management import CommandError, call_command

from inventory.models import FulfillmentCenter, Product, StockBatch
from inventory.services import CatalogError, catalog_load
from inventory.tests.large_catalog import large_catalog

pytestmark = pytest.mark.django_db

CATALOG = {
    "products": [
        {"sku": "PARA-500", "name": "Paracetamol", "price": "30.00", "schedule": "otc"},
        {"sku": "AMOX-500", "name": "Amoxicillin", "price": "85.50", "schedule": "h"},
    ],
    "centers": [{"code": "BLR-1", "name": "Bengaluru", "priority": 1, "pincode_prefixes": ["560"]}],
    "stock": [
        {
            "center": "BLR-1",
            "sku": "PARA-500",
            "batch": "B1",
            "expires_on": "2027-06-30",
            "quantity": 500,
        },
        {
            "center": "BLR-1",
            "sku": "AMOX-500",
            "batch": "B2",
            "expires_on": "2027-01-31",
            "quantity": 40,
        },
    ],
}


def test_load_then_reload_sets_quantities_without_duplicates():
    catalog_load(CATALOG)
    changed = copy.deepcopy(CATALOG)
    changed["stock"][0]["quantity"] = 321
    changed["products"][0]["price"] = "31.00"

    counts = catalog_load(changed)

    assert (counts.products, counts.centers, counts.stock) == (2, 1, 2)
    assert StockBatch.objects.count() == 2
    assert StockBatch.objects.get(batch="B1").on_hand == 321
    assert str(Product.objects.get(sku="PARA-500").price) == "31.00"


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda c: c["stock"][1].update(sku="NOPE"), "stock[1].sku"),
        (lambda c: c["stock"][0].update(quantity=-1), "stock[0].quantity"),
        (lambda c: c["stock"][1].update(expires_on="2027-02-30"), "stock[1].expires_on"),
        (lambda c: c["products"][1].update(schedule="z"), "products[1].schedule"),
        (lambda c: c["products"][0].update(price="1.005"), "products[0].price"),
        (
            lambda c: c["centers"][0].update(pincode_prefixes=["0560"]),
            "centers[0].pincode_prefixes[0]",
        ),
        (lambda c: c["products"].append(dict(c["products"][0])), "products[2]"),
    ],
)
def test_a_bad_entry_is_named_and_nothing_is_written(mutate, where):
    bad = copy.deepcopy(CATALOG)
    mutate(bad)
    with pytest.raises(CatalogError) as error:
        catalog_load(bad)
    assert error.value.where == where
    assert not Product.objects.exists()
    assert not FulfillmentCenter.objects.exists()


def test_command_reports_the_bad_entry(tmp_path):
    bad = copy.deepcopy(CATALOG)
    bad["stock"][1]["center"] = "XXX"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(CommandError, match=r"stock\[1\]\.center"):
        call_command("load_catalog", str(path))
    assert not StockBatch.objects.exists()


def test_bundled_demo_catalog_loads():
    call_command("seed_demo")
    assert Product.objects.filter(schedule="x").exists()
    assert FulfillmentCenter.objects.count() == 3
    assert Product.objects.filter(sku="PARA-500", schedule="otc").exists()


def test_fifty_thousand_rows_load_and_reload_without_duplicates():
    # Timed in docs/BENCHMARKS.md, never here.
    catalog = large_catalog(50_000)
    assert catalog_load(catalog).stock == 50_000
    catalog["stock"][-1]["quantity"] = 7
    catalog_load(catalog)

    assert StockBatch.objects.count() == 50_000
    assert Product.objects.count() == 5_000
    last = catalog["stock"][-1]
    assert StockBatch.objects.get(batch=last["batch"], center__code=last["center"]).on_hand == 7
