"""Documentation serializers: the order and return bodies field by field, for the OpenAPI
schema only. `orders.serializers.OrderOut` and `ReturnOut` build those bodies as plain
dicts (the order is rendered on every request, and a declared serializer costs several
times as much), so they describe nothing themselves; these mirror them. The end-to-end
suite validates every live response against the schema, which keeps the two in step.

Where the schema's other classes live: see `core.schema`.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from core.enums import Channel
from core.schema import cursor_page
from inventory.enums import StockReturnOutcome, WriteOffReason
from logistics.enums import DeliveryFailureReason, ShipmentStatus
from orders.enums import (
    FailureReason,
    Fulfilment,
    LineStatus,
    OnPartial,
    OrderStatus,
    SubstitutionStatus,
)
from orders.models import ReturnReason, ReturnStatus
from orders.services.returns import PARTLY_RESTOCKED
from payments.enums import PaymentMethod, PaymentStatus

# A return line's outcome once inspected: its units restocked, written off, or some of each.
RETURN_LINE_OUTCOMES = [*StockReturnOutcome.values, PARTLY_RESTOCKED]


def money(help_text: str = "", **kwargs: object) -> serializers.DecimalField:
    """Money: a string with two decimals, in INR (`"60.00"`)."""
    return serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text=help_text or None, **kwargs
    )


class OrderItemDoc(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.IntegerField(min_value=0, help_text="Units still ordered.")
    cancelled_quantity = serializers.IntegerField(
        min_value=0, help_text="Units cancelled before pickup."
    )
    unit_price = money()
    line_total = money("`unit_price` × `quantity`.")
    requires_prescription = serializers.BooleanField()
    status = serializers.ChoiceField(
        choices=LineStatus.choices,
        help_text="`dropped`: failed the prescription rules in a `ship_available` order.",
    )
    reason = serializers.ChoiceField(
        choices=FailureReason.choices,
        allow_null=True,
        help_text="The rule a dropped line failed; null while active.",
    )
    substituted_for = serializers.CharField(
        required=False,
        help_text="Only on a line the client accepted a substitute for: the SKU ordered.",
    )

    class Meta:
        ref_name = "OrderItem"


class SubstitutionDoc(serializers.Serializer):
    id = serializers.UUIDField()
    sku = serializers.CharField(help_text="The SKU ordered.")
    substitute_sku = serializers.CharField(help_text="The product offered instead.")
    status = serializers.ChoiceField(choices=SubstitutionStatus.choices)
    price_difference = money("What the line costs more with the substitute (negative: less).")

    class Meta:
        ref_name = "Substitution"


class DeliveryAddressDoc(serializers.Serializer):
    name = serializers.CharField()
    line1 = serializers.CharField()
    line2 = serializers.CharField(allow_blank=True)
    city = serializers.CharField()
    state = serializers.CharField()
    pincode = serializers.CharField()
    phone = serializers.CharField()
    email = serializers.EmailField(required=False, help_text="Only when the order gave one.")

    class Meta:
        ref_name = "DeliveryAddress"


class PaymentDoc(serializers.Serializer):
    method = serializers.ChoiceField(choices=PaymentMethod.choices)
    status = serializers.ChoiceField(
        choices=PaymentStatus.choices, help_text="`pending` until the payment is prepared."
    )
    gateway = serializers.CharField(allow_null=True, help_text="Null until known.")
    amount = money("What the payment is for: the capture, or for cash on delivery what is due.")
    reference = serializers.CharField(
        allow_null=True, help_text="The gateway's charge id; null until known."
    )
    refunded_amount = money("The sum of the refunds made so far.")

    class Meta:
        ref_name = "Payment"


class ShipmentItemDoc(serializers.Serializer):
    sku = serializers.CharField()
    batch = serializers.CharField()
    quantity = serializers.IntegerField(min_value=0)

    class Meta:
        ref_name = "ShipmentItem"


class ShipmentEventDoc(serializers.Serializer):
    status = serializers.ChoiceField(choices=ShipmentStatus.choices)
    at = serializers.DateTimeField(help_text="When the courier says it happened.")
    attempt = serializers.IntegerField(
        allow_null=True, help_text="The delivery attempt it is about, where it is about one."
    )
    reason = serializers.ChoiceField(
        choices=DeliveryFailureReason.choices,
        allow_null=True,
        help_text="Why a delivery attempt failed; null otherwise.",
    )

    class Meta:
        ref_name = "ShipmentEvent"


class ShipmentDoc(serializers.Serializer):
    partner = serializers.CharField(allow_null=True, help_text="Null until booked.")
    awb = serializers.CharField(allow_null=True, help_text="Null until booked.")
    center = serializers.CharField(help_text="The fulfilment centre the parcel leaves from.")
    status = serializers.ChoiceField(choices=ShipmentStatus.choices)
    eta = serializers.DateField(allow_null=True, help_text="Null until booked.")
    tracking_url = serializers.URLField(
        allow_null=True, help_text="The partner's tracking page; null until booked."
    )
    delivery_attempts = serializers.IntegerField(min_value=0, help_text="Failed attempts.")
    delivery_otp = serializers.CharField(
        allow_null=True,
        help_text="Six digits the customer gives the courier for a parcel holding a "
        "schedule H or H1 drug; else null.",
    )
    items = ShipmentItemDoc(many=True)
    events = ShipmentEventDoc(many=True, help_text="The courier's updates, oldest first.")

    class Meta:
        ref_name = "Shipment"


class OrderEventDoc(serializers.Serializer):
    # A string, not an enum: new event types come with new features, and a client must
    # keep reading orders whose timeline holds one it does not know (docs/API.md, Events).
    type = serializers.CharField(help_text="The event type, such as `order.confirmed`.")
    at = serializers.DateTimeField()
    data = serializers.DictField(help_text="What the event type carries.")

    class Meta:
        ref_name = "OrderEvent"


class FulfilmentDoc(serializers.Serializer):
    type = serializers.ChoiceField(choices=Fulfilment.choices)
    center = serializers.CharField(
        required=False, help_text="Only for `pickup`: the centre's code where it is collected."
    )

    class Meta:
        ref_name = "Fulfilment"


class ContactDoc(serializers.Serializer):
    name = serializers.CharField()
    phone = serializers.CharField(help_text="E.164.")
    email = serializers.EmailField(required=False)

    class Meta:
        ref_name = "Contact"


class PickupDoc(serializers.Serializer):
    ready_at = serializers.DateTimeField()
    collect_by = serializers.DateTimeField(
        help_text="Not collected by then: the order is cancelled (`pickup_not_collected`)."
    )
    collected_at = serializers.DateTimeField(allow_null=True)
    locked = serializers.BooleanField(
        help_text="Too many wrong codes: collection waits until ops unlock it."
    )

    class Meta:
        ref_name = "Pickup"


class OrderDoc(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.CharField(help_text="`COT-` and eight digits; dense and unique.")
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    failure_reason = serializers.ChoiceField(
        choices=FailureReason.choices,
        allow_null=True,
        help_text="Why the order ended (rejected, payment_failed, cancelled); else null.",
    )
    channel = serializers.ChoiceField(choices=Channel.choices)
    customer_id = serializers.CharField()
    items = OrderItemDoc(many=True)
    substitutions = SubstitutionDoc(
        many=True, help_text="Substitutes a pharmacist offered for the lines, oldest first."
    )
    total_amount = money("The sum of the lines now (dropped lines left out).")
    currency = serializers.CharField(help_text="Always `INR`.")
    on_partial = serializers.ChoiceField(choices=OnPartial.choices)
    delivery_address = DeliveryAddressDoc(
        allow_null=True, help_text="Null for an in-store pickup (`fulfilment.type: pickup`)."
    )
    fulfilment = FulfilmentDoc()
    contact = ContactDoc(
        allow_null=True, help_text="A pickup order's contact for its messages; else null."
    )
    pickup_code = serializers.CharField(
        allow_null=True,
        help_text="Six digits the customer gives at the counter; null until "
        "`ready_for_pickup`, and for deliveries.",
    )
    pickup = PickupDoc(allow_null=True, help_text="Null until a pickup order is ready.")
    prescription_id = serializers.UUIDField(allow_null=True)
    payment = PaymentDoc()
    shipments = ShipmentDoc(many=True, help_text="One per fulfilment centre serving the order.")
    events = OrderEventDoc(many=True, help_text="The order's timeline, oldest first.")
    payment_retry_until = serializers.DateTimeField(
        allow_null=True,
        help_text="While `awaiting_payment`: until when another payment method may be sent "
        "(`POST /orders/{id}/payment/`); else null.",
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Order"


OrderPage = cursor_page(OrderDoc, "OrderPage")


class OrderListQueryDoc(serializers.Serializer):
    """The list's query filters, as `orders.filters.OrderFilter` reads them."""

    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    customer_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    created_after = serializers.DateTimeField(
        required=False, help_text="Inclusive; any UTC offset."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Exclusive; any UTC offset."
    )


class ReturnLineDoc(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField(min_value=1)
    unit_price = money()
    amount = money("`unit_price` × `quantity`.")
    outcome = serializers.ChoiceField(
        choices=RETURN_LINE_OUTCOMES,
        allow_null=True,
        help_text="Null until the return is received and inspected.",
    )
    write_off_reason = serializers.ChoiceField(
        choices=WriteOffReason.choices, allow_null=True, help_text="Null unless written off."
    )

    class Meta:
        ref_name = "ReturnLine"


class ReturnPickupDoc(serializers.Serializer):
    partner = serializers.CharField()
    awb = serializers.CharField()

    class Meta:
        ref_name = "ReturnPickup"


class ReturnDoc(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=ReturnStatus.choices)
    reason = serializers.ChoiceField(choices=ReturnReason.choices)
    note = serializers.CharField(allow_blank=True)
    lines = ReturnLineDoc(many=True)
    refund_amount = money("The lines' `unit_price` × `quantity`.")
    pickup = ReturnPickupDoc(
        allow_null=True, help_text="The reverse pickup, once approved; else null."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Return"


class ReturnListDoc(serializers.Serializer):
    results = ReturnDoc(many=True, help_text="Oldest first.")

    class Meta:
        ref_name = "ReturnList"


# --- Examples ---------------------------------------------------------------------------

ORDER_PLACE_EXAMPLE = OpenApiExample(
    "PlaceOrder",
    summary="Two strips of paracetamol, paid by UPI",
    request_only=True,
    value={
        "customer_id": "C-1001",
        "items": [{"sku": "PARA-500", "quantity": 2}],
        "prescription_id": None,
        "delivery_address": {
            "name": "A. Rao",
            "line1": "12 MG Road",
            "line2": "",
            "city": "Bengaluru",
            "state": "KA",
            "pincode": "560001",
            "phone": "+919800000001",
            "email": "a.rao@example.com",
        },
        "payment_method": "upi",
        "payment_token": "tok_ok",
    },
)

ORDER_RECEIVED_EXAMPLE = OpenApiExample(
    "OrderReceived",
    summary="The order as committed",
    response_only=True,
    status_codes=["202"],
    value={
        "id": "7b0d3c1e-5f4a-4d2b-9a61-0c8e2f7d9b14",
        "number": "COT-00001234",
        "status": "received",
        "failure_reason": None,
        "channel": "web",
        "customer_id": "C-1001",
        "items": [
            {
                "sku": "PARA-500",
                "name": "Paracetamol 500 mg, 15 tablets",
                "quantity": 2,
                "cancelled_quantity": 0,
                "unit_price": "30.00",
                "line_total": "60.00",
                "requires_prescription": False,
                "status": "active",
                "reason": None,
            }
        ],
        "substitutions": [],
        "total_amount": "60.00",
        "currency": "INR",
        "on_partial": "reject",
        "delivery_address": {
            "name": "A. Rao",
            "line1": "12 MG Road",
            "line2": "",
            "city": "Bengaluru",
            "state": "KA",
            "pincode": "560001",
            "phone": "+919800000001",
            "email": "a.rao@example.com",
        },
        "fulfilment": {"type": "delivery"},
        "contact": None,
        "pickup_code": None,
        "pickup": None,
        "prescription_id": None,
        "payment": {
            "method": "upi",
            "status": "pending",
            "gateway": None,
            "amount": "60.00",
            "reference": None,
            "refunded_amount": "0.00",
        },
        "shipments": [],
        "events": [{"type": "order.received", "at": "2026-12-04T10:15:30.123456Z", "data": {}}],
        "payment_retry_until": None,
        "created_at": "2026-12-04T10:15:30.120000Z",
        "updated_at": "2026-12-04T10:15:30.120000Z",
    },
)
