"""`seed_demo --history-days N`: past delivered orders through the real models, days
not yet written only, with the demand the processes promise."""

from __future__ import annotations

import datetime
import io

import numpy as np
import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from inventory.enums import ReservationStatus
from inventory.models import ReservationItem
from orders.models import Order, OrderEvent, OrderLine
from orders.services.demo_history import WEEKLY, DemandProcess

pytestmark = pytest.mark.django_db


def test_history_is_written_once_and_topped_up():
    out = io.StringIO()
    call_command("seed_demo", "--history-days", "14", stdout=out)
    assert "order history" in out.getvalue()
    history = Order.objects.filter(customer_id__startswith="HIST-")
    today = timezone.localdate()
    days = {o.confirmed_at.date() for o in history}
    assert min(days) == today - datetime.timedelta(days=14)
    assert max(days) == today - datetime.timedelta(days=1)
    assert set(history.values_list("status", flat=True)) == {"delivered"}
    # Every unit of a line left with a committed reservation of a real batch.
    lines = OrderLine.objects.filter(order__in=history).aggregate(units=Sum("quantity"))["units"]
    held = ReservationItem.objects.filter(
        reservation__status=ReservationStatus.COMMITTED,
        reservation__order_id__in=history.values("pk"),
    ).aggregate(units=Sum("quantity"))["units"]
    assert lines == held > 0
    # Created the day they were confirmed, with no timeline to feed the outbox.
    first = history.order_by("confirmed_at").first()
    assert first.created_at.date() == first.confirmed_at.date()
    assert not OrderEvent.objects.filter(order__in=history).exists()
    # No SKU of schedule X, nor H1, is in the history.
    assert not OrderLine.objects.filter(order__in=history, schedule__in=["x", "h1"]).exists()

    count = history.count()
    again = io.StringIO()
    call_command("seed_demo", "--history-days", "14", stdout=again)
    assert "already up to date" in again.getvalue()
    assert Order.objects.filter(customer_id__startswith="HIST-").count() == count


def test_a_process_draws_its_weekly_season_and_festival():
    days = [datetime.date(2026, 1, 5) + datetime.timedelta(days=n) for n in range(70)]  # Mon
    festival = (days[21], days[27], 3.0)
    process = DemandProcess(level=10, weekly=WEEKLY, festival=festival)
    expected = process.expected(days, days[0])
    assert expected[5] == 10 * WEEKLY[5] and expected[2] == 10 * WEEKLY[2]
    assert expected[21] == 10 * WEEKLY[0] * 3.0
    drawn = process.draw(days, days[0], np.random.default_rng(1))
    assert drawn.dtype.kind == "i" and drawn.min() >= 0
