"""The customer's message for a substitute offered: both products by name and the signed
price difference (inline pipeline, real database and simulator)."""

import pytest
from django.contrib.auth.models import User

from core.tests.factories import ApiClientFactory
from notifications.models import Notification
from orders.tests.factories import place_order
from prescriptions.enums import PrescriptionStatus
from prescriptions.services import SUBSTITUTE, LineReview, prescription_review
from prescriptions.tests.factories import prescription_with


@pytest.mark.django_db
def test_the_offer_reaches_the_customer_by_sms_and_email(
    demo_catalog, simulator, settings, django_capture_on_commit_callbacks
):
    settings.COT_PIPELINE_MODE = "inline"
    client = ApiClientFactory()
    rx = prescription_with(
        [("AMOX-500", 10)], client=client, status=PrescriptionStatus.PENDING_REVIEW
    )
    with django_capture_on_commit_callbacks(execute=True):
        order = place_order(client, items=[("AMOX-500", 10)], prescription_id=rx.pk)
    with django_capture_on_commit_callbacks(execute=True):
        prescription_review(
            prescription_id=rx.pk,
            reviewer=User.objects.create_user("ph", is_staff=True),
            decision="approved",
            lines=[
                LineReview(
                    sku="AMOX-500",
                    decision=SUBSTITUTE,
                    substitute_sku="AMOX-500-G",
                    order_id=order.pk,
                )
            ],
        )
    sent = Notification.objects.filter(order_id=order.pk, event_type="substitution.proposed")
    texts = {n.channel: n.text for n in sent}
    assert "sms" in texts  # e-mail too when the address has one
    assert texts["sms"] == (
        f"For your order {order.number} our pharmacist suggests Amoxicillin 500 mg (generic), "
        "15 capsules instead of Amoxicillin 500 mg, 15 capsules, -330.00 INR; answer in your app."
    )
