import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client

from core.tests.factories import ApiClientFactory
from orders.roles import roles_sync
from orders.tests.factories import place_order

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the audit trail is written by PostgreSQL triggers; SQLite has none",
)


def staff_client(username: str, *roles: str, superuser: bool = False) -> Client:
    roles_sync()
    user = User.objects.create_user(
        username, password="pw-123456789", is_staff=True, is_superuser=superuser
    )
    for role in roles:
        user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def confirmed(demo_catalog, simulator, settings, django_capture_on_commit_callbacks):
    settings.COT_PIPELINE_MODE = "inline"
    with django_capture_on_commit_callbacks(execute=True):
        order = place_order(ApiClientFactory(), items=[("PARA-500", 2)])
    order.refresh_from_db()
    assert order.status == "confirmed"
    return order
