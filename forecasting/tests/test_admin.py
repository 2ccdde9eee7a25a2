"""The replenishment admin: who sees it, the CSV export of what the filters show, the
chart page, and a centre's lead time set in admin reaching the next run."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from forecasting.models import CenterReplenishmentSettings, Replenishment
from forecasting.services import forecast_run
from forecasting.tests.factories import history_write, past_days
from inventory.models import FulfillmentCenter

pytestmark = pytest.mark.django_db


def logged_in(role: str) -> Client:
    user = User.objects.create_user(f"adm-{role}", password="pw-12345", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def forecast(demo_catalog):
    days = past_days(60)
    rng = np.random.default_rng(4)
    history_write(
        {
            ("PARA-500", "BLR-1"): rng.poisson(30, len(days)),
            ("PARA-500", "DEL-1"): rng.poisson(3, len(days)),
        },
        days,
    )
    return forecast_run(skus=["PARA-500"])


def test_the_export_holds_what_the_filters_show(forecast):
    client = logged_in("inventory")
    page = client.get("/admin/forecasting/replenishment/?center__id__exact=2")
    assert page.status_code == 200
    assert b"replenishment.csv" not in page.content  # a link, not the file
    delhi = FulfillmentCenter.objects.get(code="DEL-1")
    response = client.get(
        f"/admin/forecasting/replenishment/export.csv?center__id__exact={delhi.pk}"
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["sku"], r["center"]) for r in rows] == [("PARA-500", "DEL-1")]
    assert rows[0]["model"].startswith("AutoETS") and float(rows[0]["mase"]) > 0
    every = client.get("/admin/forecasting/replenishment/export.csv")
    assert len(list(csv.DictReader(io.StringIO(every.content.decode())))) == forecast.series


def test_the_chart_shows_history_forecast_and_intervals(forecast):
    row = Replenishment.objects.get(current=True, center__code="BLR-1")
    page = logged_in("inventory").get(f"/admin/forecasting/replenishment/{row.pk}/chart/")
    assert page.status_code == 200
    html = page.content.decode()
    figure = html[html.index('<figure id="forecast-chart"') : html.index("</figure>")]
    assert figure.count("<svg") == 1 and "80 %" in figure and "95 %" in figure
    assert "Backtest MASE" in html and f"{row.mase:.2f}" in html


@pytest.mark.parametrize("role", ["ops", "pharmacist"])
def test_other_roles_do_not_see_replenishment(forecast, role):
    client = logged_in(role)
    row = Replenishment.objects.filter(current=True).first()
    assert client.get("/admin/forecasting/replenishment/").status_code == 403
    assert client.get(f"/admin/forecasting/replenishment/{row.pk}/chart/").status_code == 403
    assert client.get("/admin/forecasting/replenishment/export.csv").status_code == 403


def test_a_centres_lead_time_set_in_admin_reaches_the_next_run(forecast):
    client = logged_in("inventory")
    delhi = FulfillmentCenter.objects.get(code="DEL-1")
    response = client.post(
        "/admin/forecasting/centerreplenishmentsettings/add/",
        {"center": delhi.pk, "lead_time_days": "12", "review_period_days": ""},
    )
    assert response.status_code == 302, response.content[:500]
    assert CenterReplenishmentSettings.objects.get(center=delhi).review_period_days is None
    forecast_run(skus=["PARA-500"])
    delhi_row = Replenishment.objects.get(current=True, center=delhi)
    other = Replenishment.objects.get(current=True, center__code="BLR-1")
    assert (delhi_row.lead_time_days, delhi_row.review_period_days) == (12, 7)
    assert other.lead_time_days == 7
    bad = client.post(
        "/admin/forecasting/centerreplenishmentsettings/add/",
        {"center": FulfillmentCenter.objects.get(code="MUM-1").pk, "lead_time_days": "0"},
    )
    assert bad.status_code == 200 and b"errornote" in bad.content
