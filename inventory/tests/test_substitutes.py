"""Products of one composition: what the catalog file says of them, and which may stand
in for a product in an order to a pincode (sellable stock there, same schedule class)."""

import datetime

import pytest

from inventory.models import Product
from inventory.selectors import product_substitutes, shelf_life_floor
from inventory.services import CatalogError, catalog_load
from inventory.tests.factories import CenterFactory, ProductFactory, StockBatchFactory

pytestmark = pytest.mark.django_db
AMOX = "amoxicillin 500 mg capsule"


def test_the_catalog_file_carries_composition_and_manufacturer_in_one_spelling():
    catalog_load(
        {
            "products": [
                {
                    "sku": "AMOX-500",
                    "name": "Amoxicillin 500",
                    "price": "95.00",
                    "schedule": "h",
                    "composition": "  Amoxicillin  500 mg Capsule ",
                    "manufacturer": "Nilgiri Laboratories",
                },
                {"sku": "PARA-500", "name": "Paracetamol", "price": "30.00", "schedule": "otc"},
            ]
        }
    )
    amox = Product.objects.get(sku="AMOX-500")
    assert (amox.composition, amox.manufacturer) == (AMOX, "Nilgiri Laboratories")
    assert Product.objects.get(sku="PARA-500").composition == ""
    with pytest.raises(CatalogError, match=r"products\[0\]\.composition"):
        catalog_load(
            {
                "products": [
                    {
                        "sku": "X-1",
                        "name": "X",
                        "price": "1.00",
                        "schedule": "otc",
                        "composition": 5,
                    }
                ]
            }
        )


def test_substitutes_have_the_composition_and_sellable_stock_where_the_order_goes():
    blr = CenterFactory(code="BLR-1", pincode_prefixes=["560"])
    delhi = CenterFactory(code="DEL-1", pincode_prefixes=["110"], priority=2)
    branded = ProductFactory(sku="AMOX-500", schedule="h", composition=AMOX, price="95.00")
    cheap = ProductFactory(sku="AMOX-G1", schedule="h", composition=AMOX, price="60.00")
    dear = ProductFactory(sku="AMOX-G2", schedule="h", composition=AMOX, price="80.00")
    only_delhi = ProductFactory(sku="AMOX-G3", schedule="h", composition=AMOX, price="50.00")
    short = ProductFactory(sku="AMOX-G4", schedule="h", composition=AMOX, price="55.00")
    ProductFactory(sku="AMOX-OFF", schedule="h", composition=AMOX, active=False)
    ProductFactory(sku="AMOX-OTC", schedule="otc", composition=AMOX)
    ProductFactory(sku="AZIT-500", schedule="h", composition="azithromycin 500 mg tablet")
    for product, center in ((branded, blr), (cheap, blr), (dear, blr), (only_delhi, delhi)):
        StockBatchFactory(product=product, center=center, on_hand=10)
    StockBatchFactory(
        product=short,
        center=blr,
        on_hand=10,
        expires_on=shelf_life_floor() - datetime.timedelta(days=1),
    )

    found = product_substitutes(sku="AMOX-500", pincode="560001")
    assert [(s.sku, str(s.price), s.available) for s in found] == [
        ("AMOX-G1", "60.00", 10),
        ("AMOX-G2", "80.00", 10),
    ]
    assert [s.sku for s in product_substitutes(sku="AMOX-500", pincode="110001")] == ["AMOX-G3"]
    assert product_substitutes(sku="AMOX-500", pincode="560001", quantity=11) == []
    assert product_substitutes(sku="AZIT-500", pincode="560001") == []
    assert product_substitutes(sku="NOPE", pincode="560001") == []
