"""A customer with a history worth redacting, made the way production makes it: orders
placed and run through the inline pipeline against the real simulator and database,
messages sent, webhooks delivered to a real endpoint, a prescription with an image, an
H1 line in the register, a delivery, a cancellation with a note, a return with a UPI id.
Every personal value is distinctive, so a search of the whole database finds its copies."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from core.models import ApiClient
from core.tests.factories import ApiClientFactory
from logistics.models import Shipment
from logistics.services import shipment_tracking_apply
from notifications.tests.receiver import WebhookReceiver, webhook_receiver
from orders.models import Order, OrderEvent
from orders.services.cancellation import CLIENT, order_cancel
from orders.services.returns import ReturnLineRequest, return_reject, return_request
from orders.tests.factories import place_order
from prescriptions.models import H1RegisterEntry, Prescription
from prescriptions.tests.factories import prescription_with

NAME = "Zephyrine Okonkwo-Bellweather"
STREET = "77 Quillfeather Lane"
PHONE = "+919812398765"
EMAIL = "zephyrine.q@example.org"
PATIENT = "Quentavious Marlowe-Pike"
CANCEL_NOTE = "ring Zephyrine twice at the blue gate"
RETURN_NOTE = "Zephyrine says the strip was crushed"
VPA = "zephyrine.okb@okaxis"
# Every value that names or reaches the customer (the patient's name is the law's to keep
# for a while; the rest goes).
CONTACT_VALUES = (NAME, STREET, PHONE, EMAIL, CANCEL_NOTE, RETURN_NOTE, VPA)
ADDRESS = {
    "name": NAME,
    "line1": STREET,
    "line2": "Flat 4B",
    "city": "Bengaluru",
    "state": "KA",
    "pincode": "560001",
    "phone": PHONE,
    "email": EMAIL,
}
PNG = b"\x89PNG\r\n\x1a\n" + b"prescription image of Quentavious" * 8


@dataclass
class History:
    client: ApiClient
    customer_id: str
    prescription: Prescription
    # An H1 order, delivered; a paracetamol order cancelled with a note; a COD order
    # delivered and partly returned with a UPI id for the refund.
    delivered: Order
    cancelled: Order
    returned: Order

    @property
    def orders(self) -> list[Order]:
        return [self.delivered, self.cancelled, self.returned]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


def _deliver(order: Order, capture: Callable[..., Any]) -> None:
    with capture(execute=True):
        for shipment in Shipment.objects.filter(order_id=order.pk):
            shipment_tracking_apply(
                awb=shipment.awb, status="delivered", at=timezone.now(), otp_verified=True
            )
    Shipment.objects.filter(order_id=order.pk).update(status_at=timezone.now())


@pytest.fixture
def history(
    demo_catalog: None,
    simulator: Any,
    receiver: WebhookReceiver,
    settings: Any,
    tmp_path: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> History:
    settings.COT_PIPELINE_MODE = "inline"
    settings.MEDIA_ROOT = str(tmp_path / "media")
    capture = django_capture_on_commit_callbacks
    client = ApiClientFactory(name="privacy-shop", webhook_url=receiver.url)
    customer = "C-PRIV-77"
    prescription = prescription_with(
        [("CEFI-200", 4)],
        client=client,
        customer_id=customer,
        patient_name=PATIENT,
        image=SimpleUploadedFile("rx.png", PNG, content_type="image/png"),
    )

    def place(items: list[tuple[str, int]], **kwargs: Any) -> Order:
        with capture(execute=True):
            order = place_order(
                client,
                items=items,
                customer_id=customer,
                delivery_address=dict(ADDRESS),
                **kwargs,
            )
        order.refresh_from_db()
        assert order.status == "confirmed", list(order.events.values_list("type", flat=True))
        return order

    delivered = place([("CEFI-200", 2)], prescription_id=prescription.pk)
    _deliver(delivered, capture)
    cancelled = place([("PARA-500", 1)])
    with capture(execute=True):
        order_cancel(order=cancelled, by=CLIENT, actor=f"client:{client.name}", note=CANCEL_NOTE)
    returned = place([("PARA-500", 3)], payment_method="cod", payment_token="")
    _deliver(returned, capture)
    with capture(execute=True):
        requested = return_request(
            order=returned,
            reason="damaged",
            note=RETURN_NOTE,
            refund_vpa=VPA,
            lines=[ReturnLineRequest(sku="PARA-500", quantity=1)],
            by=f"client:{client.name}",
        ).ret
        # Decided: no return is left open, so the order's story is over.
        return_reject(return_id=requested.pk, by="ops:desk", note="no photo of the damage")
    for order in (delivered, cancelled, returned):
        order.refresh_from_db()
    assert (delivered.status, cancelled.status, returned.status) == (
        "delivered",
        "cancelled",
        "delivered",
    )
    assert H1RegisterEntry.objects.filter(order_id=delivered.pk, patient_name=PATIENT).exists()
    return History(client, customer, prescription, delivered, cancelled, returned)


def age(history: History, *, days: int) -> None:
    """Move the customer's whole history `days` into the past, as the database would hold
    it had it happened then."""
    then = timezone.now() - datetime.timedelta(days=days)
    ids = [o.pk for o in history.orders]
    Order.objects.filter(pk__in=ids).update(created_at=then, updated_at=then)
    OrderEvent.objects.filter(order_id__in=ids).update(at=then)
    Prescription.objects.filter(pk=history.prescription.pk).update(
        created_at=then, updated_at=then, issued_on=then.date() - datetime.timedelta(days=3)
    )
    H1RegisterEntry.objects.filter(order_id__in=ids).update(recorded_at=then)
