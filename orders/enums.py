from django.db import models


class OrderStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSING = "processing", "Processing"
    ON_HOLD = "on_hold", "On hold (prescription review)"
    CONFIRMED = "confirmed", "Confirmed"
    SHIPPED = "shipped", "Shipped"
    DELIVERED = "delivered", "Delivered"
    # Every shipment came back to the centre (return to origin).
    RETURNED = "returned", "Returned"
    REJECTED = "rejected", "Rejected"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    CANCELLED = "cancelled", "Cancelled"
    # Payment retry: the gateway declined and the client's window for another payment
    # method is open (the stock stays reserved).
    AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment (retry window)"
    # In-store pickup, instead of confirmed -> shipped -> delivered: paid (or cash at the
    # counter), stock set aside at the centre, waiting for the customer's pickup code.
    READY_FOR_PICKUP = "ready_for_pickup", "Ready for pickup"
    COLLECTED = "collected", "Collected"


class Fulfilment(models.TextChoices):
    """How the order reaches the customer."""

    DELIVERY = "delivery", "Delivery to an address"
    PICKUP = "pickup", "In-store pickup at a centre"


class OnPartial(models.TextChoices):
    """What an order wants when some of its lines fail the prescription rules."""

    REJECT = "reject", "Reject the whole order"
    SHIP_AVAILABLE = "ship_available", "Drop the failing lines, ship the rest"


class LineStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    # Failed the prescription rules in a `ship_available` order: never reserved, charged
    # or shipped.
    DROPPED = "dropped", "Dropped"


_S = OrderStatus
# The status groups, defined once. An order that ENDED failed or was cancelled: it owes
# nothing and must hold nothing (compensation and the sweeper see to it).
ENDED = frozenset({_S.REJECTED, _S.PAYMENT_FAILED, _S.CANCELLED})
# Where nothing happens any more: counted once in `cot_orders_total`.
TERMINAL = ENDED | {_S.DELIVERED, _S.RETURNED, _S.COLLECTED}
# The pipeline's success: paid, stock committed, on its way to the customer (a booked
# shipment, or set aside at the centre for pickup). Counted in `cot_orders_total` too, and
# timed from `received` in `cot_order_duration_seconds`.
FULFILLED = frozenset({_S.CONFIRMED, _S.READY_FOR_PICKUP})
# What the pipeline may still end (a business "no", a step out of retries).
ENDABLE = frozenset({_S.RECEIVED, _S.PROCESSING, _S.ON_HOLD})
# A client or ops may cancel until the order ships (or, for pickup, is collected), and
# while it waits for the client's other payment method. That wait is neither REDRIVABLE
# nor EXPIRABLE: it keeps its stock until its own window ends (`order_expire_payment_retries`).
CANCELLABLE = ENDABLE | FULFILLED | {_S.AWAITING_PAYMENT}
# The pipeline is working on it: the sweeper re-drives it when it sits too long.
REDRIVABLE = frozenset({_S.RECEIVED, _S.PROCESSING})
# A reservation past its time ends the order only while the pipeline still works on it;
# `on_hold` orders wait for a pharmacist and keep their stock.
EXPIRABLE = REDRIVABLE


class SubstitutionStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed (waiting for the client)"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired (no answer in time)"


class FailureReason(models.TextChoices):
    PRESCRIPTION_REQUIRED = "prescription_required"
    PRESCRIPTION_INVALID = "prescription_invalid"
    PRESCRIPTION_EXPIRED = "prescription_expired"
    PRESCRIPTION_REJECTED = "prescription_rejected"
    PRESCRIPTION_QUANTITY_EXCEEDED = "prescription_quantity_exceeded"
    NOT_SELLABLE_ONLINE = "not_sellable_online"
    OUT_OF_STOCK = "out_of_stock"
    UNSERVICEABLE_PINCODE = "unserviceable_pincode"
    PAYMENT_DECLINED = "payment_declined"
    PAYMENT_UNAVAILABLE = "payment_unavailable"
    FULFILMENT_UNAVAILABLE = "fulfilment_unavailable"
    CANCELLED_BY_CLIENT = "cancelled_by_client"
    CANCELLED_BY_OPS = "cancelled_by_ops"
    # On hold longer than COT_HOLD_TIMEOUT_SECONDS with no pharmacist's decision.
    PRESCRIPTION_REVIEW_TIMEOUT = "prescription_review_timeout"
    # The client declined (or never answered) the one substitute offered for a line.
    SUBSTITUTION_DECLINED = "substitution_declined"
    # Ready for pickup longer than COT_PICKUP_HOLD_DAYS: restocked and refunded.
    PICKUP_NOT_COLLECTED = "pickup_not_collected"


class EventType(models.TextChoices):
    ORDER_RECEIVED = "order.received"
    ORDER_PROCESSING = "order.processing"
    PRESCRIPTION_VALIDATED = "prescription.validated"
    PRESCRIPTION_FAILED = "prescription.failed"
    # One line of a `ship_available` order failed the prescription rules and was dropped.
    PRESCRIPTION_LINE_REJECTED = "prescription.line_rejected"
    ORDER_ON_HOLD = "order.on_hold"
    # A hold ended with the prescription approved: recorded with the `order.processing`
    # that follows, so the customer is told of this resume, not of every order's start.
    ORDER_RESUMED = "order.resumed"
    SUBSTITUTION_PROPOSED = "substitution.proposed"
    SUBSTITUTION_ACCEPTED = "substitution.accepted"
    SUBSTITUTION_DECLINED = "substitution.declined"
    INVENTORY_RESERVED = "inventory.reserved"
    INVENTORY_INSUFFICIENT = "inventory.insufficient"
    INVENTORY_RELEASED = "inventory.released"
    INVENTORY_COMMITTED = "inventory.committed"
    PAYMENT_PREPARED = "payment.prepared"
    PAYMENT_CAPTURED = "payment.captured"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_REFUNDED = "payment.refunded"
    # Payment retry: declined, and the client may pay another way until `payment_retry_until`.
    PAYMENT_RETRY_REQUESTED = "payment.retry_requested"
    SHIPMENT_BOOKED = "shipment.booked"
    # Booking failed (no partner could take the shipment).
    SHIPMENT_FAILED = "shipment.failed"
    # The courier's tracking news, one event per update that moved a shipment.
    SHIPMENT_PICKED_UP = "shipment.picked_up"
    SHIPMENT_IN_TRANSIT = "shipment.in_transit"
    SHIPMENT_OUT_FOR_DELIVERY = "shipment.out_for_delivery"
    SHIPMENT_DELIVERED = "shipment.delivered"
    SHIPMENT_DELIVERY_FAILED = "shipment.delivery_failed"
    SHIPMENT_RETURNING = "shipment.returning"
    SHIPMENT_RETURNED = "shipment.returned"
    # Units that came back: on the shelf again, or written off.
    INVENTORY_RESTOCKED = "inventory.restocked"
    INVENTORY_WRITTEN_OFF = "inventory.written_off"
    ORDER_RETURNED = "order.returned"
    ORDER_LINES_CANCELLED = "order.lines_cancelled"
    RETURN_REQUESTED = "return.requested"
    RETURN_APPROVED = "return.approved"
    RETURN_REJECTED = "return.rejected"
    RETURN_RECEIVED = "return.received"
    RETURN_REFUNDED = "return.refunded"
    ORDER_CONFIRMED = "order.confirmed"
    ORDER_SHIPPED = "order.shipped"
    ORDER_DELIVERED = "order.delivered"
    ORDER_REJECTED = "order.rejected"
    ORDER_CANCELLED = "order.cancelled"
    NOTIFICATION_SENT = "notification.sent"
    NOTIFICATION_FAILED = "notification.failed"
    # In-store pickup: set aside at the centre with a pickup code; handed over against it.
    ORDER_READY_FOR_PICKUP = "order.ready_for_pickup"
    ORDER_COLLECTED = "order.collected"
    # Five wrong pickup codes lock collection until ops unlock it.
    PICKUP_LOCKED = "pickup.locked"
    PICKUP_UNLOCKED = "pickup.unlocked"
    # Past the contract's list: ops-facing, the pipeline stopped re-driving the order.
    ORDER_NEEDS_ATTENTION = "order.needs_attention"


class Step(models.TextChoices):
    """Pipeline steps; each records its outcome once per order (`OrderStep`)."""

    PRESCRIPTION = "prescription"
    STOCK = "stock"
    PAYMENT_PREPARE = "payment_prepare"
    CHARGE = "charge"
    SHIPMENT = "shipment"
    CONFIRM = "confirm"
