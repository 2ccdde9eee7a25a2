"""Admin logins through the real login form: repeated failures lock the username from
that address, even against the right password, until the lock is reset."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from axes.utils import reset
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "right-pw-123456"


def _login(client: Client, password: str):
    return client.post(LOGIN, {"username": "olive", "password": password})


def test_ten_bad_logins_lock_the_account_until_it_is_reset(settings):
    User.objects.create_user("olive", password=PASSWORD, is_staff=True)
    client = Client()
    statuses = [_login(client, f"guess-{n}").status_code for n in range(10)]
    # Four ordinary refusals (the form again), then the lock from the fifth on.
    assert statuses[: settings.AXES_FAILURE_LIMIT - 1] == [200] * 4
    assert set(statuses[settings.AXES_FAILURE_LIMIT - 1 :]) == {429}

    locked = _login(client, PASSWORD)
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed logins for olive" in page and "30 minutes" in page
    assert "_auth_user_id" not in client.session

    # Another username from the same address is not locked.
    User.objects.create_user("oscar", password=PASSWORD, is_staff=True)
    other = Client().post(LOGIN, {"username": "oscar", "password": PASSWORD})
    assert other.status_code == 302

    # A superuser sees the lock in admin, and lifts it.
    root = User.objects.create_superuser("root", password=PASSWORD)
    admin = Client()
    admin.force_login(root)
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "olive" in listing.content.decode()
    assert AccessAttempt.objects.get(username="olive").failures_since_start >= 5

    reset(username="olive")
    assert _login(client, PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_staff_other_than_superusers_cannot_see_or_lift_locks():
    staff = Client()
    staff.force_login(User.objects.create_user("ops-1", password=PASSWORD, is_staff=True))
    assert staff.get("/admin/axes/accessattempt/").status_code == 403
