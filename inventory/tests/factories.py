from __future__ import annotations

import datetime
from decimal import Decimal

import factory

from inventory.enums import Schedule
from inventory.models import FulfillmentCenter, Product, StockBatch


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        django_get_or_create = ("sku",)

    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = factory.LazyAttribute(lambda o: f"Medicine {o.sku}")
    price = Decimal("30.00")
    schedule = Schedule.OTC


class CenterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FulfillmentCenter
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"C-{n}")
    name = factory.LazyAttribute(lambda o: f"Centre {o.code}")
    priority = factory.Sequence(lambda n: n + 1)
    pincode_prefixes = factory.LazyFunction(lambda: ["560"])


class StockBatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StockBatch

    product = factory.SubFactory(ProductFactory)
    center = factory.SubFactory(CenterFactory)
    batch = factory.Sequence(lambda n: f"B-{n:05d}")
    expires_on = factory.LazyFunction(lambda: datetime.date.today() + datetime.timedelta(days=365))
    on_hand = 100
    reserved = 0
