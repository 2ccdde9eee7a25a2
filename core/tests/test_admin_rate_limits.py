"""Ops set a client's rate limits in admin, and the next request is held to them."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for

pytestmark = pytest.mark.django_db


def test_rate_limits_are_edited_in_admin_and_hold_from_the_next_request(client):
    api_client = ApiClientFactory(name="partner")
    key = api_key_for(api_client)
    client.force_login(User.objects.create_superuser("root", password="pw-root"))
    url = f"/admin/core/apiclient/{api_client.pk}/change/"

    page = client.get(url)
    assert page.status_code == 200
    assert b"Order placements per second" in page.content
    assert b"Requests per second" in page.content
    # The form as shown, with the two limits changed.
    form = page.context["adminform"].form
    data = {name: form.initial.get(name, field.initial) for name, field in form.fields.items()}
    data = {
        k: ("on" if v is True else v) for k, v in data.items() if v is not None and v is not False
    }
    data.update(orders_per_second="0", requests_per_second="1")
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.content[:2000]

    api_client.refresh_from_db()
    assert (api_client.orders_per_second, api_client.requests_per_second) == (0, 1)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    time.sleep(1 - time.time() % 1 + 0.01)  # both requests in one second of the clock
    assert api.get("/api/v1/orders/").status_code == 200
    assert api.get("/api/v1/orders/").status_code == 429
