"""The product read API in-process: shapes, filters, availability per pincode, paging."""

import datetime

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from inventory.tests.factories import CenterFactory, ProductFactory, StockBatchFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/products/"


@pytest.fixture
def api():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(ApiClientFactory())}")
    return client


def soon(days):
    return datetime.date.today() + datetime.timedelta(days=days)


def test_price_schedule_prescription_and_available_units_for_the_pincode(api):
    blr = CenterFactory(code="BLR", priority=1, pincode_prefixes=["560"])
    blr2 = CenterFactory(code="BLR2", priority=2, pincode_prefixes=["56"])
    delhi = CenterFactory(code="DEL", priority=3, pincode_prefixes=["110"])
    amox = ProductFactory(sku="AMOX-500", name="Amoxicillin", price="85.50", schedule="h")
    StockBatchFactory(product=amox, center=blr, on_hand=10, reserved=4)
    StockBatchFactory(product=amox, center=blr2, on_hand=3)
    StockBatchFactory(product=amox, center=blr, on_hand=99, expires_on=soon(10))  # too short
    StockBatchFactory(product=amox, center=delhi, on_hand=50)  # does not serve 560001
    ProductFactory(sku="PARA-500", name="Paracetamol")
    ProductFactory(sku="OLD-1", active=False)

    response = api.get(URL, {"pincode": "560001"})

    assert response.status_code == 200, response.json()
    assert response.json()["results"] == [
        {
            "sku": "AMOX-500",
            "name": "Amoxicillin",
            "price": "85.50",
            "currency": "INR",
            "schedule": "h",
            "requires_prescription": True,
            "composition": "",
            "manufacturer": "",
            "available_quantity": 9,
        },
        {
            "sku": "PARA-500",
            "name": "Paracetamol",
            "price": "30.00",
            "currency": "INR",
            "schedule": "otc",
            "requires_prescription": False,
            "composition": "",
            "manufacturer": "",
            "available_quantity": 0,
        },
    ]
    assert api.get(URL, {"pincode": "682001"}).json()["results"][0]["available_quantity"] == 0
    assert api.get(URL).json()["results"][0]["available_quantity"] is None


def test_search_and_sku_filters(api):
    ProductFactory(sku="PARA-500", name="Paracetamol 500")
    ProductFactory(sku="PARA-650", name="Paracetamol 650")
    ProductFactory(sku="CETI-10", name="Cetirizine")

    def skus(**params):
        return [p["sku"] for p in api.get(URL, params).json()["results"]]

    assert skus(search="paracet") == ["PARA-500", "PARA-650"]
    assert skus(search="ceti") == ["CETI-10"]
    assert skus(sku="PARA-650") == ["PARA-650"]
    assert skus(sku="PARA-650", search="cetirizine") == []
    assert skus(sku="para-650") == []


def test_cursor_pages_cost_the_same_queries_whatever_their_size(api):
    center = CenterFactory(pincode_prefixes=["560"])
    for n in range(30):
        StockBatchFactory(product=ProductFactory(sku=f"P-{n:02d}"), center=center, on_hand=n + 1)

    def fetch(url, params=None):
        with CaptureQueriesContext(connection) as queries:
            response = api.get(url, params)
        assert response.status_code == 200
        return response.json(), len(queries)

    small, small_queries = fetch(URL, {"pincode": "560001", "page_size": 2})
    large, large_queries = fetch(URL, {"pincode": "560001", "page_size": 25})
    assert small_queries == large_queries and len(large["results"]) == 25
    assert [p["available_quantity"] for p in small["results"]] == [1, 2]

    seen, url = [], URL + "?pincode=560001&page_size=7"
    while url:
        page, _ = fetch(url)
        seen += [p["sku"] for p in page["results"]]
        url = page["next"]
    assert seen == [f"P-{n:02d}" for n in range(30)]


@pytest.mark.parametrize(
    ("params", "attr"),
    [
        ({"pincode": "056000"}, "pincode"),
        ({"pincode": "56000"}, "pincode"),
        ({"sku": "x" * 65}, "sku"),
        ({"search": "a\x00b"}, "search"),
    ],
)
def test_bad_query_parameters_are_400_in_the_contract_shape(api, params, attr):
    response = api.get(URL, params)
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert [e["attr"] for e in response.json()["errors"]] == [attr]


def test_only_channel_clients_may_list_products(db):
    assert APIClient().get(URL).status_code == 401
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    staff = APIClient()
    staff.force_login(user)
    response = staff.get(URL)
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "permission_denied"
