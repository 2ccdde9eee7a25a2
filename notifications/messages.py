"""What a customer message says: the built-in default per event and channel, and the
rendering of the admin-editable templates (Django template language).

Template source is written by staff in admin, never taken from a request. The context
holds plain values only (strings, numbers, lists of dicts), so a template cannot reach
models or methods; the engine has no loaders and no tag libraries, so `include` and
`load` fail, and a template that fails for any reason falls back to the default.
Nothing here reads the database but an order's lines and, for a tracking link or a
delivery OTP, its shipment, for a pickup code its pickup (each only when a template uses
it): the active templates come from `notifications.selectors`.
"""

from __future__ import annotations

import datetime
import functools
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template import Context, Engine, Template

from inventory.selectors import center_name
from logistics.models import Shipment
from logistics.selectors import shipment_tracking_url
from notifications.enums import NotificationChannel
from orders.enums import EventType, FailureReason
from orders.models import Order, Pickup, Substitution

logger = logging.getLogger(__name__)

SMS, EMAIL = NotificationChannel.SMS, NotificationChannel.EMAIL

# Plain text out (SMS and text e-mail): no HTML escaping.
ENGINE = Engine(autoescape=False, loaders=[], libraries={}, string_if_invalid="")


@dataclass(frozen=True)
class Message:
    subject: str
    body: str


_EMAIL_FOOTER = (
    "\n\nItems:\n"
    "{% for item in items %}- {{ item.name }} x {{ item.quantity }}\n{% endfor %}"
    "Total: {{ total }}\n\nCOT Pharmacy"
)

# One for every event in NOTIFIED_EVENTS on every channel.
DEFAULTS: dict[tuple[str, str], Message] = {
    (EventType.ORDER_ON_HOLD, SMS): Message(
        "",
        "Your order {{ number }} is waiting for our pharmacist to check your prescription. "
        "We will message you as soon as it is checked.",
    ),
    (EventType.ORDER_ON_HOLD, EMAIL): Message(
        "Your order {{ number }} is waiting for a prescription check",
        "Hello {{ name }},\n\nyour order {{ number }} is waiting for our pharmacist to check "
        "your prescription. Your items are set aside for you, and we will write again as "
        "soon as it is checked." + _EMAIL_FOOTER,
    ),
    (EventType.ORDER_RESUMED, SMS): Message(
        "",
        "Our pharmacist has checked your prescription: your order {{ number }} is going ahead.",
    ),
    (EventType.ORDER_RESUMED, EMAIL): Message(
        "Your prescription is checked: order {{ number }} is going ahead",
        "Hello {{ name }},\n\nour pharmacist has checked your prescription, and your order "
        "{{ number }} is going ahead. We will tell you when it is confirmed." + _EMAIL_FOOTER,
    ),
    # A substitute offered for a line: `substitute` instead of `original`, the line
    # costing `price_difference` (signed) more.
    (EventType.SUBSTITUTION_PROPOSED, SMS): Message(
        "",
        "For your order {{ number }} our pharmacist suggests {{ substitute }} instead of "
        "{{ original }}, {{ price_difference }} INR; answer in your app.",
    ),
    (EventType.SUBSTITUTION_PROPOSED, EMAIL): Message(
        "A substitute for {{ original }} in your order {{ number }}",
        "Hello {{ name }},\n\nfor your order {{ number }} our pharmacist suggests "
        "{{ substitute }} instead of {{ original }} (same composition), "
        "{{ price_difference }} INR. Please answer in your app: accept or decline." + _EMAIL_FOOTER,
    ),
    (EventType.ORDER_CONFIRMED, SMS): Message(
        "", "Your order {{ number }} ({{ total }}) is confirmed and will be delivered soon."
    ),
    (EventType.ORDER_CONFIRMED, EMAIL): Message(
        "Your order {{ number }} is confirmed",
        "Hello {{ name }},\n\nyour order {{ number }} is confirmed and will be delivered soon."
        + _EMAIL_FOOTER,
    ),
    # In-store pickup: `pickup_code` (what the customer shows at the counter), `center`
    # (the centre's name), `collect_by` (the day it is cancelled if not collected).
    (EventType.ORDER_READY_FOR_PICKUP, SMS): Message(
        "",
        "Your order {{ number }} ({{ total }}) is ready for pickup at {{ center }}. "
        "Show this code at the counter: {{ pickup_code }}. Collect it by {{ collect_by }}.",
    ),
    (EventType.ORDER_READY_FOR_PICKUP, EMAIL): Message(
        "Your order {{ number }} is ready for pickup",
        "Hello {{ name }},\n\nyour order {{ number }} is ready for pickup at {{ center }}. "
        "Show this code at the counter: {{ pickup_code }}. Please collect it by "
        "{{ collect_by }}; after that it is cancelled and refunded." + _EMAIL_FOOTER,
    ),
    (EventType.ORDER_COLLECTED, SMS): Message(
        "", "You have collected your order {{ number }}. Get well soon!"
    ),
    (EventType.ORDER_COLLECTED, EMAIL): Message(
        "You have collected your order {{ number }}",
        "Hello {{ name }},\n\nyou have collected your order {{ number }}. Get well soon!"
        + _EMAIL_FOOTER,
    ),
    (EventType.ORDER_REJECTED, SMS): Message(
        "", "We could not accept your order {{ number }} ({{ reason }})."
    ),
    (EventType.ORDER_REJECTED, EMAIL): Message(
        "We could not accept your order {{ number }}",
        "Hello {{ name }},\n\nwe could not accept your order {{ number }}: {{ reason }}."
        + _EMAIL_FOOTER,
    ),
    (EventType.PAYMENT_FAILED, SMS): Message(
        "", "Payment for your order {{ number }} did not go through ({{ reason }})."
    ),
    (EventType.PAYMENT_FAILED, EMAIL): Message(
        "Payment for your order {{ number }} did not go through",
        "Hello {{ name }},\n\nthe payment for your order {{ number }} did not go through "
        "({{ reason }}). Nothing was charged." + _EMAIL_FOOTER,
    ),
    # Declined, and the client's app may take another payment method until `retry_until`.
    (EventType.PAYMENT_RETRY_REQUESTED, SMS): Message(
        "",
        "Payment for your order {{ number }} did not go through. Your items are set aside: "
        "please pay another way in your app by {{ retry_until }}.",
    ),
    (EventType.PAYMENT_RETRY_REQUESTED, EMAIL): Message(
        "Payment for your order {{ number }} did not go through",
        "Hello {{ name }},\n\nthe payment for your order {{ number }} did not go through, and "
        "nothing was charged. Your items are set aside for you until {{ retry_until }}: "
        "please pay another way in your app before then." + _EMAIL_FOOTER,
    ),
    (EventType.ORDER_CANCELLED, SMS): Message(
        "", "Your order {{ number }} was cancelled ({{ reason }})."
    ),
    (EventType.ORDER_CANCELLED, EMAIL): Message(
        "Your order {{ number }} was cancelled",
        "Hello {{ name }},\n\nyour order {{ number }} was cancelled ({{ reason }}). Anything "
        "you paid is refunded." + _EMAIL_FOOTER,
    ),
    # A parcel's way to the customer: the context also has the event's `awb`,
    # `tracking_url`, `delivery_otp` (blank unless the parcel needs proof of delivery), and
    # on a failed attempt `attempt`, `reason` and `retry`.
    (EventType.SHIPMENT_PICKED_UP, SMS): Message(
        "", "Your order {{ number }} is on its way. Track it: {{ tracking_url }}"
    ),
    (EventType.SHIPMENT_PICKED_UP, EMAIL): Message(
        "Your order {{ number }} is on its way",
        "Hello {{ name }},\n\nyour order {{ number }} was picked up by the courier "
        "(tracking number {{ awb }}). Track it: {{ tracking_url }}" + _EMAIL_FOOTER,
    ),
    (EventType.SHIPMENT_OUT_FOR_DELIVERY, SMS): Message(
        "",
        "Your order {{ number }} is out for delivery and will reach you today."
        "{% if delivery_otp %} Give the courier this OTP to receive it: "
        "{{ delivery_otp }}{% endif %}",
    ),
    (EventType.SHIPMENT_OUT_FOR_DELIVERY, EMAIL): Message(
        "Your order {{ number }} is out for delivery",
        "Hello {{ name }},\n\nyour order {{ number }} is out for delivery and will reach "
        "you today. Track it: {{ tracking_url }}{% if delivery_otp %}\n\nThe courier hands "
        "it over only against this OTP: {{ delivery_otp }}. Give it to nobody else."
        "{% endif %}" + _EMAIL_FOOTER,
    ),
    (EventType.SHIPMENT_DELIVERED, SMS): Message(
        "", "Your order {{ number }} was delivered. Get well soon!"
    ),
    (EventType.SHIPMENT_DELIVERED, EMAIL): Message(
        "Your order {{ number }} was delivered",
        "Hello {{ name }},\n\nyour order {{ number }} was delivered. Get well soon!"
        + _EMAIL_FOOTER,
    ),
    (EventType.SHIPMENT_DELIVERY_FAILED, SMS): Message(
        "",
        "We could not deliver your order {{ number }}: {{ reason }}. "
        "{% if retry %}The courier will try again.{% else %}It is coming back to us; we "
        "will be in touch.{% endif %}",
    ),
    (EventType.SHIPMENT_DELIVERY_FAILED, EMAIL): Message(
        "We could not deliver your order {{ number }}",
        "Hello {{ name }},\n\nthe courier could not deliver your order {{ number }}: "
        "{{ reason }}. {% if retry %}The courier will try again.{% else %}The parcel is "
        "coming back to us; we will be in touch.{% endif %} Track it: {{ tracking_url }}"
        + _EMAIL_FOOTER,
    ),
    (EventType.SHIPMENT_RETURNED, SMS): Message(
        "",
        "Your order {{ number }} could not be delivered and has come back to us. "
        "We will tell you about your refund shortly.",
    ),
    (EventType.SHIPMENT_RETURNED, EMAIL): Message(
        "Your order {{ number }} has come back to us",
        "Hello {{ name }},\n\nthe courier could not deliver your order {{ number }} and "
        "the parcel has come back to us. We will tell you about your refund shortly."
        + _EMAIL_FOOTER,
    ),
    # Each refund (a parcel back, cancelled lines, a return, ops): `amount` is this one,
    # `payout_to` the UPI id when cash on delivery is paid back.
    (EventType.PAYMENT_REFUNDED, SMS): Message(
        "",
        "We have refunded INR {{ amount }} for your order {{ number }}"
        "{% if payout_to %} to {{ payout_to }}{% endif %}. It reaches you in 5-7 working days.",
    ),
    (EventType.PAYMENT_REFUNDED, EMAIL): Message(
        "Refund of INR {{ amount }} for your order {{ number }}",
        "Hello {{ name }},\n\nwe have refunded INR {{ amount }} for your order {{ number }}"
        "{% if payout_to %}, paid to your UPI id {{ payout_to }}{% else %} to the way you "
        "paid{% endif %}. It reaches you in 5-7 working days." + _EMAIL_FOOTER,
    ),
}

# A failed attempt's reason as the customer reads it; any other code is shown in words.
DELIVERY_FAILURES: dict[str, str] = {
    "customer_unavailable": "nobody was available to receive it",
    "address_not_found": "the courier could not find the address",
    "refused": "the parcel was refused",
}

# A failure reason as the customer reads it, where its code in words would not do; any
# other code is shown in words (`out_of_stock`: "out of stock").
FAILURE_REASONS: dict[str, str] = {
    FailureReason.PRESCRIPTION_REVIEW_TIMEOUT: (
        "our pharmacist could not check your prescription in time"
    ),
    FailureReason.PICKUP_NOT_COLLECTED: "it was not collected in time",
}

SAMPLE_CONTEXT: dict[str, Any] = {
    "number": "COT-00000001",
    "status": "confirmed",
    "reason": "out of stock",
    "reason_code": "out_of_stock",
    "name": "A. Customer",
    "items": [{"sku": "PARA-500", "name": "Paracetamol 500 mg", "quantity": 2, "total": "60.00"}],
    "total": "INR 60.00",
    "awb": "AWB0000001",
    "tracking_url": "http://127.0.0.1:8099/logistics/bluedart/track/AWB0000001",
    "attempt": 1,
    "retry": True,
    "delivery_otp": "123456",
    "amount": "30.00",
    "payout_to": "",
    "original": "Augmentin 625 Duo",
    "substitute": "AMOX-CLAV-625-GEN",
    "price_difference": "-120.00",
    "retry_until": "04 Dec 2026, 10:30 UTC",
    "pickup_code": "654321",
    "center": "Bengaluru 1",
    "collect_by": "7 Dec 2026",
}

# Said after an edited out-for-delivery template that does not use `delivery_otp`: the
# customer cannot receive a prescription parcel without it, whatever staff wrote.
_OTP_SENTENCE = (
    "Delivery OTP: {{ delivery_otp }}. The courier hands the parcel over only against it."
)
_DELIVERY_OTP_LINE: dict[str, str] = {
    SMS: "{% if delivery_otp %} " + _OTP_SENTENCE + "{% endif %}",
    EMAIL: "{% if delivery_otp %}\n\n" + _OTP_SENTENCE + "{% endif %}",
}
# Likewise after an edited ready-for-pickup template without `pickup_code`: the customer
# cannot collect the order without it.
_PICKUP_CODE_SENTENCE = "Pickup code: {{ pickup_code }}. Show it at the counter."
_PICKUP_CODE_LINE: dict[str, str] = {
    SMS: " " + _PICKUP_CODE_SENTENCE,
    EMAIL: "\n\n" + _PICKUP_CODE_SENTENCE,
}


def message_context(order: Order, event: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values a template may use: plain copies, never model objects. `items` (and
    `tracking_url`) are read from the database only when a template uses them (the
    template language calls a callable value; the call is made once): most SMS texts do
    not. `event` is the data of the event told of, for the events that have their own
    message (a parcel's `awb`; a failed attempt's `attempt` and `reason`)."""

    @functools.cache
    def items() -> list[dict[str, Any]]:
        return [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "total": f"{line.line_total:.2f}",
            }
            for line in order.lines.all()
        ]

    context: dict[str, Any] = {
        "number": order.number,
        "status": order.status,
        "reason": _reason_in_words(order.failure_reason or ""),
        "reason_code": order.failure_reason or "",
        "name": str(order.recipient.get("name", "")),
        "items": items,
        "total": f"{order.currency} {order.total_amount:.2f}",
    }
    if event is not None and "awb" in event:
        context.update(_shipment_context(order, event))
    if order.is_pickup:
        context.update(_pickup_context(order))
    if event is not None and "substitute_sku" in event:
        # A substitute offered: the products by name where the order knows them.
        names = dict(order.lines.values_list("sku", "name"))
        difference = str(event.get("price_difference", "0"))
        context["original"] = names.get(event.get("sku"), event.get("sku", ""))
        offered = Substitution.objects.filter(pk=event.get("id")).values_list(
            "substitute_name", flat=True
        )
        context["substitute"] = next(iter(offered), "") or str(event["substitute_sku"])
        context["price_difference"] = difference if difference.startswith("-") else f"+{difference}"
    if event is not None and "payment_retry_until" in event:
        # A declined payment's window for another payment method.
        context["retry_until"] = _when(str(event["payment_retry_until"]))
    if event is not None and "amount" in event:
        # A refund's message: this refund's amount, and where a payout went.
        context["amount"] = str(event["amount"])
        context["payout_to"] = str(event.get("payout_to") or "")
    return context


def _when(iso: str) -> str:
    """A time as a customer reads it (`04 Dec 2026, 10:30 UTC`)."""
    try:
        moment = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return moment.astimezone(datetime.UTC).strftime("%d %b %Y, %H:%M UTC")


def _reason_in_words(code: str) -> str:
    return FAILURE_REASONS.get(code, code.replace("_", " "))


def _shipment_context(order: Order, event: dict[str, Any]) -> dict[str, Any]:
    awb = str(event.get("awb") or "")

    @functools.cache
    def shipment() -> Shipment | None:
        # The event need not carry the partner or the OTP: the shipment (this order's, by
        # its AWB) does. The OTP stays off the timeline and the client's webhooks.
        return Shipment.objects.filter(order_id=order.pk, awb=awb).first()

    def tracking_url() -> str:
        # The same link the order API shows (logistics builds it).
        found = shipment()
        return (shipment_tracking_url(found) or "") if found else ""

    def delivery_otp() -> str:
        found = shipment()
        return found.delivery_otp if found else ""

    context: dict[str, Any] = {
        "awb": awb,
        "tracking_url": tracking_url if awb else "",
        "delivery_otp": delivery_otp if awb else "",
        "retry": True,
    }
    if "reason" in event:
        code = str(event.get("reason") or "")
        context["reason"] = DELIVERY_FAILURES.get(code, code.replace("_", " "))
        context["reason_code"] = code
    if "attempt" in event:
        try:
            attempt = int(event["attempt"])
        except (TypeError, ValueError):
            attempt = 0
        context["attempt"] = attempt
        # After the last attempt the courier returns the parcel instead of trying again.
        context["retry"] = not attempt or attempt < settings.COT_DELIVERY_ATTEMPTS
    return context


def _pickup_context(order: Order) -> dict[str, Any]:
    @functools.cache
    def pickup() -> Pickup | None:
        # The code stays off the timeline and the client's webhooks: the pickup has it.
        return Pickup.objects.filter(order_id=order.pk).first()

    def pickup_code() -> str:
        found = pickup()
        return found.code if found else ""

    def collect_by() -> str:
        found = pickup()
        return f"{found.collect_by:%-d %b %Y}" if found else ""

    def center() -> str:
        return center_name(code=order.pickup_center)

    return {"pickup_code": pickup_code, "collect_by": collect_by, "center": center}


@functools.lru_cache(maxsize=128)
def _compiled(source: str) -> Template:
    # Keyed by the source, so an edited template is compiled afresh; a source that does
    # not compile raises every time (not cached) and the caller falls back.
    return ENGINE.from_string(source)


def _render(source: str, context: dict[str, Any]) -> str:
    return _compiled(source).render(Context(context, autoescape=False))


def _render_message(subject: str, body: str, context: dict[str, Any]) -> Message:
    # A subject is one line whatever the template's whitespace.
    return Message(" ".join(_render(subject, context).split()), _render(body, context).strip())


def message_render(
    *, event_type: str, channel: str, context: dict[str, Any], template: Message | None
) -> Message | None:
    """The message for an event on a channel: the active `template` (its subject and body
    source) if it renders to a usable message, else the built-in default; None for events
    nobody is told about."""
    default = DEFAULTS.get((event_type, channel))
    if default is None:
        return None
    if (
        template is not None
        and event_type == EventType.SHIPMENT_OUT_FOR_DELIVERY
        and "delivery_otp" not in template.body
    ):
        template = Message(template.subject, template.body + _DELIVERY_OTP_LINE[channel])
    if (
        template is not None
        and event_type == EventType.ORDER_READY_FOR_PICKUP
        and "pickup_code" not in template.body
    ):
        template = Message(template.subject, template.body + _PICKUP_CODE_LINE[channel])
    if template is not None:
        try:
            message = _render_message(template.subject, template.body, context)
        except Exception:  # whatever an edited template does, the customer still hears
            logger.exception(
                "notification template %s (%s) failed; using the default", event_type, channel
            )
        else:
            if message.body and (channel != EMAIL or message.subject):
                return message
            logger.warning(
                "notification template %s (%s) rendered empty; using the default",
                event_type,
                channel,
            )
    return _render_message(default.subject, default.body, context)


def template_check(*, event_type: str, channel: str, subject: str, body: str) -> None:
    """Admin validation: the template compiles and renders a sample to something."""
    errors: dict[str, str] = {}
    for field, source in (("subject", subject), ("body", body)):
        try:
            _render(source, SAMPLE_CONTEXT)
        except Exception as exc:
            errors[field] = f"The template does not render: {exc}"
    if not errors and not _render(body, SAMPLE_CONTEXT).strip():
        errors["body"] = "The template renders to nothing."
    if "subject" not in errors and channel == EMAIL and not subject.strip():
        errors["subject"] = "An e-mail needs a subject."
    if (event_type, channel) not in DEFAULTS:
        errors["event_type"] = "Customers are not notified of this event on this channel."
    if errors:
        raise ValidationError(errors)


def default_templates_seed(apps: Any, schema_editor: Any) -> None:
    """Seed the editable templates with the built-in defaults (a data migration), so admin
    starts from text that works. Never overwrites a template staff already have."""
    template_model = apps.get_model("notifications", "NotificationTemplate")
    for (event_type, channel), message in DEFAULTS.items():
        template_model.objects.get_or_create(
            event_type=event_type,
            channel=channel,
            defaults={"subject": message.subject, "body": message.body},
        )
