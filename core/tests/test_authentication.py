"""`Api-Key` authentication: one statement, and every reason to refuse a key counts."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from core.models import ApiClient, ClientAPIKey
from core.tests.factories import ApiClientFactory, api_key_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/orders/"


def status_with(key: str) -> int:
    return APIClient().get(URL, HTTP_AUTHORIZATION=f"Api-Key {key}").status_code


@pytest.fixture
def client_and_key():
    client = ApiClientFactory(name="web-shop")
    return client, api_key_for(client)


def test_a_good_key_is_the_request_user_in_one_statement(client_and_key):
    from core.authentication import ApiKeyAuthentication

    client, key = client_and_key
    request = APIClient().get(URL, HTTP_AUTHORIZATION=f"Api-Key {key}").wsgi_request
    with CaptureQueriesContext(connection) as queries:
        user, auth = ApiKeyAuthentication().authenticate(request)
    assert len(queries) == 1
    assert (user.pk, user.name, user.channel, user.active) == (client.pk, "web-shop", "web", True)
    assert auth == ClientAPIKey.objects.get(client=client).pk
    assert user.created_at == client.created_at and timezone.is_aware(user.created_at)


def test_a_wrong_secret_with_a_known_prefix_is_401(client_and_key):
    _, key = client_and_key
    prefix, _, secret = key.partition(".")
    assert status_with(key) == 200
    assert status_with(f"{prefix}.{secret[::-1]}") == 401


def test_an_expired_key_is_401_and_one_not_yet_expired_works(client_and_key):
    _, key = client_and_key
    ClientAPIKey.objects.update(expiry_date=timezone.now() + datetime.timedelta(minutes=1))
    assert status_with(key) == 200
    ClientAPIKey.objects.update(expiry_date=timezone.now() - datetime.timedelta(seconds=1))
    assert status_with(key) == 401


def test_a_revoked_key_or_an_inactive_client_is_401_at_once(client_and_key):
    _, key = client_and_key
    assert status_with(key) == 200
    ApiClient.objects.update(active=False)
    assert status_with(key) == 401
    ApiClient.objects.update(active=True)
    assert status_with(key) == 200
    ClientAPIKey.objects.update(revoked=True)
    assert status_with(key) == 401


@pytest.mark.parametrize(
    "key", ["", "nodot", "a.b.c", "pre\x00fix.secret", "prefix.sec ret", "x" * 17 + ".s"]
)
def test_a_key_of_the_wrong_shape_is_401_without_a_statement(key):
    from core.authentication import ApiKeyAuthentication

    request = APIClient().get(URL, HTTP_AUTHORIZATION=f"Api-Key {key}").wsgi_request
    with CaptureQueriesContext(connection) as queries, pytest.raises(AuthenticationFailed):
        ApiKeyAuthentication().authenticate(request)
    assert len(queries) == 0
