"""A line the pharmacist struck out: the orders that need it end `prescription_rejected`,
the orders that need only the approved lines go on (inline pipeline, real simulator)."""

import pytest
from django.contrib.auth.models import User

from core.tests.factories import ApiClientFactory
from orders.enums import OrderStatus
from orders.tests.factories import place_order
from prescriptions.enums import PrescriptionStatus
from prescriptions.services import LineReview, prescription_review
from prescriptions.tests.factories import prescription_with

LINES = [("CEFI-200", 4), ("AMOX-500", 10)]


def pending(**kwargs):
    return prescription_with(LINES, status=PrescriptionStatus.PENDING_REVIEW, **kwargs)


@pytest.mark.django_db
def test_a_struck_out_line_rejects_the_orders_that_need_it_and_not_the_others(
    demo_catalog, simulator, settings, django_capture_on_commit_callbacks
):
    settings.COT_PIPELINE_MODE = "inline"
    client = ApiClientFactory()
    prescription = pending(client=client)
    pharmacist = User.objects.create_user("ph", is_staff=True)

    def place(items_):
        with django_capture_on_commit_callbacks(execute=True):
            order = place_order(client, items=items_, prescription_id=prescription.pk)
        order.refresh_from_db()
        return order

    waiting_for_both = place([("CEFI-200", 2), ("AMOX-500", 10)])
    waiting_for_amox = place([("AMOX-500", 10)])
    assert waiting_for_both.status == waiting_for_amox.status == OrderStatus.ON_HOLD
    with django_capture_on_commit_callbacks(execute=True):
        prescription_review(
            prescription_id=prescription.pk,
            reviewer=pharmacist,
            decision="partial",
            lines=[LineReview(sku="CEFI-200", decision="rejected", reason="interaction")],
        )
    waiting_for_both.refresh_from_db()
    waiting_for_amox.refresh_from_db()
    assert (waiting_for_both.status, waiting_for_both.failure_reason) == (
        OrderStatus.REJECTED,
        "prescription_rejected",
    )
    assert waiting_for_amox.status == OrderStatus.CONFIRMED
