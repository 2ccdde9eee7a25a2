"""What orders does when news arrives: its own committed events (start the pipeline,
compensate an ended order) and the domain apps' signals (signals travel up; the domain
apps never import `orders`)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import transaction

from core import faults
from logistics.signals import shipment_changed
from orders import pipeline
from orders.enums import EventType, OrderStatus
from orders.models import Order
from orders.services.ending import ENDING_EVENTS
from orders.services.payment_news import order_payment_changed
from orders.services.shipment_news import order_shipment_changed
from orders.services.substitution import substitution_offer, substitution_targets
from orders.services.transitions import order_event_committed
from payments.signals import payment_changed
from prescriptions.services import substitution_targets_wanted, substitutions_offered
from prescriptions.signals import prescription_reviewed

logger = logging.getLogger(__name__)


def on_order_event(sender: Any, order_id: uuid.UUID, event_type: str, **kwargs: Any) -> None:
    """A received order starts its pipeline; an ended one has its outside effects undone.
    Both run once the event is committed, so the workers find what they are sent for."""
    if event_type == EventType.ORDER_RECEIVED:
        _ring_the_doorbell(order_id)
    elif event_type in ENDING_EVENTS:
        pipeline.compensate(order_id)


def _ring_the_doorbell(order_id: uuid.UUID) -> None:
    """The order is committed: if the broker cannot be reached it is still accepted, and
    the sweeper starts it after COT_STUCK_ORDER_SECONDS."""
    # Test-only: as if the API server died between the commit and the enqueue.
    if faults.fault_active(faults.AFTER_COMMIT_BEFORE_ENQUEUE):
        return
    try:
        pipeline.start(order_id)
    except Exception:
        logger.warning(
            "could not start the pipeline of order %s: left to the sweeper",
            order_id,
            exc_info=True,
            extra={"order_id": str(order_id)},
        )


def on_prescription_reviewed(sender: Any, prescription_id: uuid.UUID, **kwargs: Any) -> None:
    waiting = Order.objects.filter(prescription_id=prescription_id, status=OrderStatus.ON_HOLD)
    for order_id in waiting.values_list("pk", flat=True):
        pipeline.review_decided(order_id)


def on_substitutions_offered(
    sender: Any, prescription_id: uuid.UUID, offers: list[Any], **kwargs: Any
) -> bool:
    # Inside the review's transaction: an invalid offer raises and rolls the review back.
    return substitution_offer(prescription_id=prescription_id, offers=offers)


def on_substitution_targets_wanted(
    sender: Any, prescription_id: uuid.UUID, **kwargs: Any
) -> list[Any]:
    return substitution_targets(prescription_id=prescription_id)


def on_payment_changed(
    sender: Any, order_id: uuid.UUID, status: str, data: dict[str, Any], **kwargs: Any
) -> None:
    if order_payment_changed(order_id=order_id, status=status, data=data):
        transaction.on_commit(lambda: pipeline.compensate(order_id))


def on_shipment_changed(
    sender: Any, order_id: uuid.UUID, status: str, data: dict[str, Any], **kwargs: Any
) -> None:
    order_shipment_changed(order_id=order_id, status=status, data=data)


order_event_committed.connect(on_order_event, dispatch_uid="orders.on_order_event")
prescription_reviewed.connect(on_prescription_reviewed, dispatch_uid="orders.on_rx_reviewed")
substitutions_offered.connect(on_substitutions_offered, dispatch_uid="orders.on_substitutions")
substitution_targets_wanted.connect(
    on_substitution_targets_wanted, dispatch_uid="orders.on_substitution_targets"
)
payment_changed.connect(on_payment_changed, dispatch_uid="orders.on_payment_changed")
shipment_changed.connect(on_shipment_changed, dispatch_uid="orders.on_shipment_changed")
