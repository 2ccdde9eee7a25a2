"""Fixtures shared by the order tests: a client and orders run through the inline
pipeline against the real simulator and database."""

import pytest

from core.tests.factories import ApiClientFactory, api_key_for
from orders.tests.factories import place_order


@pytest.fixture
def shop(demo_catalog, simulator, settings):
    settings.COT_PIPELINE_MODE = "inline"
    client = ApiClientFactory(name="web-shop")
    return client, api_key_for(client)


@pytest.fixture
def place(shop, django_capture_on_commit_callbacks):
    def place(items=(("PARA-500", 2),), run=True, **kwargs):
        with django_capture_on_commit_callbacks(execute=run):
            order = place_order(shop[0], items=list(items), **kwargs)
        order.refresh_from_db()
        return order

    return place
