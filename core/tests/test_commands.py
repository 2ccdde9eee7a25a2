import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from core.models import ApiClient, ClientAPIKey

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


def test_create_api_client_prints_a_working_key_once():
    lines = run("create_api_client", "shop", "--channel", "partner_store")
    assert len(lines) == 1
    client = ApiClient.objects.get(name="shop")
    assert client.channel == "partner_store"
    assert ClientAPIKey.objects.get_from_key(lines[0]).client == client


def test_create_api_client_with_webhook_prints_the_secret_second():
    lines = run(
        "create_api_client",
        "app",
        "--channel",
        "mobile",
        "--webhook-url",
        "https://localhost:8443/hooks",  # resolves (loopback: the tests allow it)
    )
    assert lines[1] == ApiClient.objects.get(name="app").webhook_secret


def test_create_api_client_sets_the_payment_retry_window():
    run("create_api_client", "shop", "--channel", "web", "--payment-retry-seconds", "600")
    run("create_api_client", "plain", "--channel", "web")
    assert ApiClient.objects.get(name="shop").payment_retry_seconds == 600
    assert ApiClient.objects.get(name="plain").payment_retry_seconds == 0


def test_create_api_client_takes_rate_limits_else_the_defaults():
    run("create_api_client", "plain", "--channel", "web")
    run(
        "create_api_client",
        "bulk",
        "--channel",
        "web",
        "--orders-per-second",
        "0",
        "--requests-per-second",
        "500",
    )
    plain, bulk = ApiClient.objects.get(name="plain"), ApiClient.objects.get(name="bulk")
    assert (plain.orders_per_second, plain.requests_per_second) == (20, 100)
    assert (bulk.orders_per_second, bulk.requests_per_second) == (0, 500)


@pytest.mark.parametrize(
    "args",
    [
        ("create_api_client", "x", "--channel", "fax"),
        ("create_api_client", "x", "--channel", "web", "--webhook-url", "ftp://nope"),
        ("create_api_client", "x", "--channel", "web", "--payment-retry-seconds", "-1"),
        ("create_api_client", "x", "--channel", "web", "--payment-retry-seconds", "86401"),
        ("create_api_client", "x", "--channel", "web", "--payment-retry-seconds", "soon"),
        ("create_api_client", "x", "--channel", "web", "--orders-per-second", "-1"),
        ("create_api_client", "x", "--channel", "web", "--requests-per-second", "ten"),
    ],
)
def test_create_api_client_refuses_bad_input(args):
    with pytest.raises((CommandError, SystemExit)):
        run(*args)
    assert not ApiClient.objects.filter(name="x").exists()


@pytest.mark.parametrize("role", ["pharmacist", "ops", "inventory"])
def test_create_staff_puts_the_user_in_the_role_group(role):
    password = run("create_staff", "sam", "--role", role)[0]
    user = User.objects.get(username="sam")
    assert user.is_staff and not user.is_superuser
    assert user.check_password(password)
    assert [g.name for g in user.groups.all()] == [role]
    assert user.get_all_permissions()  # the group carries permissions


def test_roles_grant_only_what_the_work_needs():
    run("create_staff", "pat", "--role", "pharmacist")
    run("create_staff", "ivy", "--role", "inventory")
    pharmacist, inventory = User.objects.get(username="pat"), User.objects.get(username="ivy")
    assert pharmacist.has_perm("prescriptions.change_prescription")
    assert not pharmacist.has_perm("orders.change_order")
    assert inventory.has_perm("inventory.change_stockbatch")
    assert not inventory.has_perm("payments.view_payment")


def test_seed_demo_prints_credentials_that_work():
    lines = run("seed_demo", "--print-credentials")
    key = next(line.split("=", 1)[1] for line in lines if line.startswith("COT_DEMO_API_KEY="))
    assert ClientAPIKey.objects.get_from_key(key).client.name == "demo-web"
    assert User.objects.get(username="admin").is_superuser
    # Running it again issues a new key and revokes the old one.
    run("seed_demo", "--print-credentials")
    with pytest.raises(ClientAPIKey.DoesNotExist):
        ClientAPIKey.objects.get_from_key(key)
