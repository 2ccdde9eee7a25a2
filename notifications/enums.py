from django.db import models

from orders.enums import EventType


class NotificationChannel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "E-mail"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class WebhookStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (retried for the whole retry window)"


# The order events a customer hears about, on every channel. A hold is told of when it
# starts (`order.on_hold`) and when it ends with the prescription approved
# (`order.resumed`), not through `order.processing`, which every order has. A message's
# own events (`notification.sent`, `notification.failed`) are announced like any other
# but are not among these, so recording one never starts another message. `order.shipped` and
# `order.delivered` are not either: they come with a parcel's `shipment.picked_up` and
# `shipment.delivered`, whose messages say the same with the tracking link, so the
# customer would hear it twice.
NOTIFIED_EVENTS: frozenset[str] = frozenset(
    {
        EventType.ORDER_ON_HOLD,
        EventType.ORDER_RESUMED,
        EventType.SUBSTITUTION_PROPOSED,
        EventType.ORDER_CONFIRMED,
        EventType.ORDER_READY_FOR_PICKUP,
        EventType.ORDER_COLLECTED,
        EventType.ORDER_REJECTED,
        EventType.PAYMENT_FAILED,
        EventType.ORDER_CANCELLED,
        EventType.SHIPMENT_PICKED_UP,
        EventType.SHIPMENT_OUT_FOR_DELIVERY,
        EventType.SHIPMENT_DELIVERED,
        EventType.SHIPMENT_DELIVERY_FAILED,
        EventType.SHIPMENT_RETURNED,
        EventType.PAYMENT_REFUNDED,
        # Declined, with time to pay another way (payment retry).
        EventType.PAYMENT_RETRY_REQUESTED,
    }
)

# Notified events an order may have more than once (one per parcel, one per failed
# delivery attempt, one per substitute offered): each of them gets its own message, told
# apart by the event's id and rendered with the event's data. The others get one message per order.
PER_EVENT: frozenset[str] = frozenset(
    {
        EventType.SUBSTITUTION_PROPOSED,
        EventType.SHIPMENT_PICKED_UP,
        EventType.SHIPMENT_OUT_FOR_DELIVERY,
        EventType.SHIPMENT_DELIVERED,
        EventType.SHIPMENT_DELIVERY_FAILED,
        EventType.SHIPMENT_RETURNED,
        EventType.PAYMENT_REFUNDED,
        # Each decline within the window is told of.
        EventType.PAYMENT_RETRY_REQUESTED,
    }
)


def message_key(event_type: str, event_id: int) -> int:
    """Which event a message belongs to: the event's id for PER_EVENT events, else 0
    (one message per order, whichever of its events of that type asked)."""
    return event_id if event_type in PER_EVENT else 0
