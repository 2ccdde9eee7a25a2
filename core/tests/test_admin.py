"""The API clients' admin: what ops may set on a client."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from core.models import ApiClient

pytestmark = pytest.mark.django_db


def test_the_payment_retry_window_is_set_in_admin():
    admin = User.objects.create_superuser("root", password="pw-123456789")
    client = ApiClient.objects.create(name="shop", channel="web")
    browser = Client()
    browser.force_login(admin)
    url = f"/admin/core/apiclient/{client.pk}/change/"
    form = {
        "name": "shop",
        "channel": "web",
        "webhook_url": "",
        "active": "on",
        "orders_per_second": "20",
        "requests_per_second": "100",
    }

    refused = browser.post(url, {**form, "payment_retry_seconds": "86401"})
    assert refused.status_code == 200  # the form again, with the error
    assert ApiClient.objects.get(pk=client.pk).payment_retry_seconds == 0

    saved = browser.post(url, {**form, "payment_retry_seconds": "900"})
    assert saved.status_code == 302
    assert ApiClient.objects.get(pk=client.pk).payment_retry_seconds == 900
