"""Input and output shapes of the order API (docs/API.md)."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from core.enums import Channel
from core.serializers import StrictSerializer
from logistics.selectors import shipment_tracking_url
from orders.enums import Fulfilment, OnPartial, OrderStatus
from orders.models import Order, Pickup, Return, ReturnReason
from payments.enums import PaymentMethod

PINCODE = RegexValidator(r"^[1-9][0-9]{5}$", "A pincode is six digits, the first not 0.", "invalid")
E164 = RegexValidator(r"^\+[1-9][0-9]{7,14}$", "A phone number in E.164 form (+919800000001).")


def distinct_skus(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each SKU once per list: a second line of one SKU is a 400 on that line."""
    seen: set[str] = set()
    for index, line in enumerate(lines):
        if line["sku"] in seen:
            raise serializers.ValidationError(
                {index: {"sku": [serializers.ErrorDetail("Duplicate SKU.", code="duplicate")]}}
            )
        seen.add(line["sku"])
    return lines


def payment_token_required(attrs: dict[str, Any]) -> dict[str, Any]:
    """Every payment method but cash on delivery is charged with a gateway token."""
    if attrs["payment_method"] != PaymentMethod.COD and not attrs["payment_token"]:
        raise serializers.ValidationError(
            {"payment_token": ["Required for every payment method except cod."]}
        )
    return attrs


class AddressIn(StrictSerializer):
    name = serializers.CharField(max_length=200)
    line1 = serializers.CharField(max_length=200)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=100)
    state = serializers.CharField(max_length=100)
    pincode = serializers.CharField(validators=[PINCODE])
    phone = serializers.CharField(validators=[E164])
    # Optional: where known, the customer's order messages also go by e-mail.
    email = serializers.EmailField(max_length=254, required=False)


class FulfilmentIn(StrictSerializer):
    """`{"type": "delivery"}` (to `delivery_address`), or `{"type": "pickup", "center"}`:
    in-store pickup at that centre."""

    type = serializers.ChoiceField(choices=Fulfilment.choices)
    center = serializers.CharField(max_length=20, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == Fulfilment.PICKUP and not attrs.get("center"):
            raise serializers.ValidationError(
                {"center": [serializers.ErrorDetail("Required for pickup.", code="required")]}
            )
        if attrs["type"] == Fulfilment.DELIVERY and "center" in attrs:
            raise serializers.ValidationError(
                {"center": ["Only for pickup: a delivery's centre is chosen by its pincode."]}
            )
        return attrs


class ContactIn(StrictSerializer):
    """How to reach the customer of a pickup order (its messages, the pickup code)."""

    name = serializers.CharField(max_length=200)
    phone = serializers.CharField(validators=[E164])
    email = serializers.EmailField(max_length=254, required=False)


class ItemIn(StrictSerializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=100)


class OrderPlaceIn(StrictSerializer):
    customer_id = serializers.CharField(max_length=64)
    items = serializers.ListField(child=ItemIn(), min_length=1, max_length=50)
    prescription_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    # Exactly one of them: a delivery address, or an in-store pickup (`fulfilment`).
    delivery_address = AddressIn(required=False, allow_null=True)
    fulfilment = FulfilmentIn(required=False)
    contact = ContactIn(required=False, allow_null=True)
    payment_method = serializers.ChoiceField(choices=PaymentMethod.choices)
    payment_token = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    on_partial = serializers.ChoiceField(
        choices=OnPartial.choices, required=False, default=OnPartial.REJECT
    )

    def validate_items(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return distinct_skus(items)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        client = self.context["client"]
        if "channel" in attrs and attrs["channel"] != client.channel:
            raise serializers.ValidationError(
                {"channel": [f"This API key belongs to the {client.channel} channel."]}
            )
        payment_token_required(attrs)
        _one_way_to_the_customer(attrs)
        return attrs


class OrderPaymentRetryIn(StrictSerializer):
    """Another payment method for an order awaiting payment: as when placing it."""

    payment_method = serializers.ChoiceField(choices=PaymentMethod.choices)
    payment_token = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return payment_token_required(attrs)


def _one_way_to_the_customer(attrs: dict[str, Any]) -> None:
    """A delivery order has a delivery address (and no `contact`: the address is how the
    customer is reached); a pickup order has none."""
    pickup = attrs.get("fulfilment", {}).get("type") == Fulfilment.PICKUP
    address, contact = attrs.get("delivery_address"), attrs.get("contact")
    if pickup and address is not None:
        detail = "A pickup order has no delivery address (give `contact` instead)."
        raise _refused("delivery_address", detail, "not_allowed")
    if not pickup and address is None:
        raise _refused("delivery_address", "Required, unless `fulfilment` is a pickup.", "required")
    if not pickup and contact is not None:
        detail = "Only for pickup orders: a delivery reaches the customer at its address."
        raise _refused("contact", detail, "not_allowed")


def _refused(field: str, detail: str, code: str) -> serializers.ValidationError:
    return serializers.ValidationError({field: [serializers.ErrorDetail(detail, code=code)]})


def _money(value: Any) -> str:
    return f"{value:.2f}"


class OrderCollectIn(StrictSerializer):
    pickup_code = serializers.RegexField(
        r"^[0-9]{6}$", error_messages={"invalid": "A pickup code is six digits."}
    )


class CancelLineIn(StrictSerializer):
    sku = serializers.CharField(max_length=64)
    # No upper bound here: more than the line has left is a 409 (quantity_exceeded).
    quantity = serializers.IntegerField(min_value=1)


class OrderCancelIn(StrictSerializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    # Given: only these units are cancelled (the order stays confirmed); absent: all of it.
    lines = serializers.ListField(child=CancelLineIn(), min_length=1, max_length=50, required=False)

    def validate_lines(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return distinct_skus(lines)


class OrderOut(serializers.BaseSerializer):
    """The order as clients see it; payments and shipments come from the context, and so
    may its lines and events when the caller holds them already (a new order)."""

    def to_representation(self, order: Order) -> dict[str, Any]:
        related = self.context.get("related", {})
        payment = related.get("payments", {}).get(order.pk)
        shipments = related.get("shipments", {}).get(order.pk, [])
        lines = related.get("lines", {}).get(order.pk)
        events = related.get("events", {}).get(order.pk)
        offers = related.get("substitutions", {}).get(order.pk)
        pickup = related.get("pickups", {}).get(order.pk)
        return {
            "id": str(order.pk),
            "number": order.number,
            "status": order.status,
            "failure_reason": order.failure_reason,
            "channel": order.channel,
            "customer_id": order.customer_id,
            "items": [
                {
                    "sku": line.sku,
                    "name": line.name,
                    "quantity": line.quantity,
                    "cancelled_quantity": line.cancelled_quantity,
                    "unit_price": _money(line.unit_price),
                    "line_total": _money(line.line_total),
                    "requires_prescription": line.requires_prescription,
                    "status": line.status,
                    # The prescription rule a dropped line failed; null while active.
                    "reason": line.drop_reason or None,
                    # Only on a line the client accepted a substitute for: the sku ordered.
                    **({"substituted_for": line.substituted_for} if line.substituted_for else {}),
                }
                for line in (order.lines.all() if lines is None else lines)
            ],
            # Substitutes a pharmacist offered for its lines, and the client's answers.
            "substitutions": [
                {
                    "id": str(s.pk),
                    "sku": s.sku,
                    "substitute_sku": s.substitute_sku,
                    "status": s.status,
                    "price_difference": _money(s.price_difference),
                }
                for s in (order.substitutions.all() if offers is None else offers)
            ],
            "total_amount": _money(order.total_amount),
            "currency": order.currency,
            "on_partial": order.on_partial,
            "delivery_address": order.delivery_address,
            **_pickup_fields(order, pickup),
            "prescription_id": str(order.prescription_id) if order.prescription_id else None,
            "payment": {
                "method": order.payment_method,
                "status": payment.status if payment else "pending",
                "gateway": (payment.gateway or None) if payment else None,
                # What the payment is for: the capture (refunds aside), or for cash on
                # delivery what is due; the order's total until a payment exists.
                "amount": _money(payment.amount if payment else order.total_amount),
                "reference": (payment.reference or None) if payment else None,
                # The sum of the refunds made so far (returns, cancelled lines, ops).
                "refunded_amount": _money(payment.refunded_amount if payment else 0),
            },
            "shipments": [
                {
                    "partner": s.partner or None,
                    "awb": s.awb or None,
                    "center": s.center,
                    "status": s.status,
                    "eta": s.eta.isoformat() if s.eta else None,
                    "tracking_url": shipment_tracking_url(s),
                    "delivery_attempts": s.delivery_attempts,
                    # The customer gives it to the courier (proof of delivery); null when
                    # the parcel needs none.
                    "delivery_otp": s.delivery_otp or None,
                    "items": [
                        {"sku": i.sku, "batch": i.batch, "quantity": i.quantity}
                        for i in s.items.all()
                    ],
                    # The courier's updates, oldest first.
                    "events": [
                        {
                            "status": u.status,
                            "at": _iso(u.at),
                            "attempt": u.attempt,
                            "reason": u.reason or None,
                        }
                        for u in s.updates.all()
                    ],
                }
                for s in shipments
            ],
            "events": [
                {"type": e.type, "at": _iso(e.at), "data": e.data}
                for e in (order.events.all() if events is None else events)
            ],
            # Until when another payment method may be sent (payment retry); null unless
            # the order is awaiting payment.
            "payment_retry_until": (
                _iso(order.payment_retry_until)
                if order.status == OrderStatus.AWAITING_PAYMENT and order.payment_retry_until
                else None
            ),
            "created_at": _iso(order.created_at),
            "updated_at": _iso(order.updated_at),
        }


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _iso_or_none(value: Any) -> str | None:
    return None if value is None else _iso(value)


def _pickup_fields(order: Order, pickup: Pickup | None) -> dict[str, Any]:
    """How the order reaches its customer: as placed, and for an in-store pickup the
    code to collect it with and where the pickup stands (null until it is ready)."""
    if not order.is_pickup:
        return {
            "fulfilment": {"type": order.fulfilment},
            "contact": None,
            "pickup_code": None,
            "pickup": None,
        }
    return {
        "fulfilment": {"type": order.fulfilment, "center": order.pickup_center},
        "contact": order.contact,
        # Only the order's own client reads the order: the customer shows it at the counter.
        "pickup_code": pickup.code if pickup else None,
        "pickup": None
        if pickup is None
        else {
            "ready_at": _iso(pickup.ready_at),
            "collect_by": _iso(pickup.collect_by),
            "collected_at": _iso_or_none(pickup.collected_at),
            "locked": pickup.locked_at is not None,
        },
    }


# Empty is allowed (the field's default, and a blank value never reaches validators):
# said in the pattern too, so the published schema's default matches its pattern.
UPI_ID = RegexValidator(
    r"^(?:[A-Za-z0-9._-]{2,}@[A-Za-z][A-Za-z0-9]{1,63})?$", "A UPI id, name@bank.", "invalid"
)


class ReturnLineIn(StrictSerializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=100)


class ReturnRequestIn(StrictSerializer):
    reason = serializers.ChoiceField(choices=ReturnReason.choices)
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    lines = serializers.ListField(child=ReturnLineIn(), min_length=1, max_length=50)
    # Cash on delivery only: where the refund is paid out.
    refund_vpa = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default="", validators=[UPI_ID]
    )

    def validate_lines(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return distinct_skus(lines)


class ReturnOut(serializers.BaseSerializer):
    """A return as clients see it (its lines prefetched)."""

    def to_representation(self, ret: Return) -> dict[str, Any]:
        return {
            "id": str(ret.pk),
            "status": ret.status,
            "reason": ret.reason,
            "note": ret.note,
            "lines": [
                {
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_price": _money(line.unit_price),
                    "amount": _money(line.amount),
                    # null until the return is received and inspected.
                    "outcome": line.outcome or None,
                    "write_off_reason": line.write_off_reason or None,
                }
                for line in ret.lines.all()
            ],
            "refund_amount": _money(ret.refund_amount),
            "pickup": (
                {"partner": ret.pickup_partner, "awb": ret.pickup_awb} if ret.pickup_awb else None
            ),
            "created_at": _iso(ret.created_at),
            "updated_at": _iso(ret.updated_at),
        }
