"""Rotating a client's API key and webhook secret: commands, services and admin."""

import io
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import ApiClient, ClientAPIKey
from core.services import api_key_rotate, webhook_secret_rotate
from core.tests.factories import ApiClientFactory, api_key_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/orders/"


def status_with(key: str) -> int:
    return APIClient().get(URL, HTTP_AUTHORIZATION=f"Api-Key {key}").status_code


def run(*args) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


def expire(key: str) -> None:
    """The grace period is over (set in the database, not waited for)."""
    ClientAPIKey.objects.filter(prefix=key.partition(".")[0]).update(
        expiry_date=timezone.now() - timedelta(seconds=1)
    )


def test_rotate_api_key_prints_a_new_key_and_the_old_one_works_until_the_grace_ends():
    client = ApiClientFactory(name="shop")
    old = api_key_for(client)

    [new] = run("rotate_api_key", "shop")

    assert new != old
    assert (status_with(old), status_with(new)) == (200, 200)
    old_row = ClientAPIKey.objects.get(prefix=old.partition(".")[0])
    assert abs(old_row.expiry_date - (timezone.now() + timedelta(hours=24))) < timedelta(minutes=1)
    assert ClientAPIKey.objects.get_from_key(new).expiry_date is None
    expire(old)
    assert (status_with(old), status_with(new)) == (401, 200)


def test_a_zero_grace_ends_the_old_keys_at_once_and_a_sooner_expiry_is_kept():
    client = ApiClientFactory(name="shop")
    old = api_key_for(client)
    [newer] = run("rotate_api_key", "shop", "--grace-hours", "48")
    soon = ClientAPIKey.objects.get(prefix=old.partition(".")[0]).expiry_date

    api_key_rotate(client=client, grace=timedelta(hours=72))
    assert ClientAPIKey.objects.get(prefix=old.partition(".")[0]).expiry_date == soon

    [newest] = run("rotate_api_key", "shop", "--grace-hours", "0")
    assert (status_with(old), status_with(newer), status_with(newest)) == (401, 401, 200)


@pytest.mark.parametrize(
    "args",
    [
        ("rotate_api_key", "nobody"),
        ("rotate_api_key", "shop", "--grace-hours", "-1"),
        ("rotate_api_key", "shop", "--grace-hours", "nan"),
        ("rotate_webhook_secret", "nobody"),
        ("rotate_webhook_secret", "shop", "--grace-hours", "soon"),
    ],
)
def test_rotation_refuses_bad_input_and_changes_nothing(args):
    client = ApiClientFactory(name="shop")
    key = api_key_for(client)
    with pytest.raises((CommandError, SystemExit)):
        run(*args)
    assert ClientAPIKey.objects.filter(client=client).count() == 1
    assert ClientAPIKey.objects.get_from_key(key).expiry_date is None
    assert ApiClient.objects.get(pk=client.pk).webhook_secret == client.webhook_secret


def test_rotate_webhook_secret_signs_with_both_until_the_grace_ends():
    client = ApiClientFactory(name="app", webhook_url="https://93.184.215.14/hooks")
    old = client.webhook_secret

    [new] = run("rotate_webhook_secret", "app", "--grace-hours", "2")

    client.refresh_from_db()
    assert (client.webhook_secret, client.webhook_secret_previous) == (new, old)
    now = timezone.now()
    assert client.webhook_signing_secrets(now) == [new, old]
    assert client.webhook_signing_secrets(now + timedelta(hours=2, seconds=1)) == [new]

    newest = webhook_secret_rotate(client=client, grace=timedelta(0))
    client.refresh_from_db()
    assert client.webhook_signing_secrets(timezone.now()) == [newest]


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    return client


def admin_action(http, action, clients, **form):
    return http.post(
        "/admin/core/apiclient/",
        {"action": action, "_selected_action": [c.pk for c in clients], **form},
    )


def test_admin_rotates_a_key_after_asking_for_the_grace_and_shows_it_once(superuser_client):
    shop = ApiClientFactory(name="shop")
    old = api_key_for(shop)

    page = admin_action(superuser_client, "rotate_api_key", [shop])
    assert page.status_code == 200 and b"grace_hours" in page.content
    assert ClientAPIKey.objects.filter(client=shop).count() == 1  # nothing yet

    page = admin_action(superuser_client, "rotate_api_key", [shop], confirm="yes", grace_hours="1")
    assert page.status_code == 200
    new = page.context["rotated"][0][1]
    assert new.encode() in page.content
    assert (status_with(old), status_with(new)) == (200, 200)
    expire(old)
    assert status_with(old) == 401
    assert LogEntry.objects.filter(object_id=str(shop.pk)).exists()  # who rotated it, when


def test_admin_rotates_a_webhook_secret_and_never_shows_the_stored_one(superuser_client):
    app = ApiClientFactory(name="app", webhook_url="https://93.184.215.14/hooks")
    old = app.webhook_secret

    page = admin_action(
        superuser_client, "rotate_webhook_secret", [app], confirm="yes", grace_hours="24"
    )

    app.refresh_from_db()
    assert app.webhook_secret.encode() in page.content
    assert app.webhook_signing_secrets(timezone.now()) == [app.webhook_secret, old]
    change = superuser_client.get(f"/admin/core/apiclient/{app.pk}/change/")
    assert change.status_code == 200
    assert app.webhook_secret.encode() not in change.content
    assert old.encode() not in change.content


def test_admin_refuses_a_private_webhook_url(superuser_client, settings):
    settings.COT_ALLOW_PRIVATE_WEBHOOKS = False
    app = ApiClientFactory(name="app")
    form = {
        "name": "app",
        "channel": "web",
        "active": "on",
        "payment_retry_seconds": "0",
        "orders_per_second": "20",
        "requests_per_second": "100",
    }

    page = superuser_client.post(
        f"/admin/core/apiclient/{app.pk}/change/",
        {**form, "webhook_url": "https://169.254.169.254/latest"},
    )
    assert page.status_code == 200  # the form again, with the error
    assert b"link-local address" in page.content
    assert ApiClient.objects.get(pk=app.pk).webhook_url == ""

    page = superuser_client.post(
        f"/admin/core/apiclient/{app.pk}/change/",
        {**form, "webhook_url": "https://93.184.215.14/hooks"},
    )
    assert page.status_code == 302
    assert ApiClient.objects.get(pk=app.pk).webhook_url == "https://93.184.215.14/hooks"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://93.184.215.14/hooks", "must use https"),
        ("https://127.0.0.1/hooks", "loopback"),
        ("https://10.0.0.1/hooks", "private"),
    ],
)
def test_create_api_client_refuses_unsafe_webhook_urls(settings, url, reason):
    settings.COT_ALLOW_PRIVATE_WEBHOOKS = False
    with pytest.raises(CommandError, match=reason):
        run("create_api_client", "x", "--channel", "web", "--webhook-url", url)
    assert not ApiClient.objects.filter(name="x").exists()
    run("create_api_client", "x", "--channel", "web", "--webhook-url", "https://93.184.215.14/h")
    assert ApiClient.objects.get(name="x").webhook_url == "https://93.184.215.14/h"
