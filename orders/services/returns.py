"""Customer returns: delivered units going back, from the request to the refund.

`requested` (the client, through the API) → `approved` (ops; a reverse pickup is booked
with the partner that delivered the units) or `rejected` (ops, with a note) → `received`
(ops inspected each line: its units restocked or written off, the prescription quantities
given back, the refund written, all in one transaction) → `refunded` (payments says the
money went back). Each move is compare-and-set on the return's status, so two ops
clicking the same button move it once, and each is recorded on the order's timeline.

Which units a return takes is decided when it is requested, under the order's row lock:
units of the order's delivered shipments, delivered within `COT_RETURN_WINDOW_DAYS`, in
shipment item order, skipping units that an earlier return (not rejected) already took.
The batches they came from are kept on the return's lines, so receiving puts them back
into the batches they left.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core import metrics
from core.money import to_money
from inventory.enums import PRESCRIPTION_SCHEDULES, StockReturnOutcome, WriteOffReason
from inventory.models import Product
from inventory.services import stock_take_back
from logistics.enums import ShipmentStatus
from logistics.models import Shipment, ShipmentItem
from logistics.services.returns import PickupItem, reverse_pickup_book
from orders.enums import EventType
from orders.models import Order, Return, ReturnLine, ReturnReason, ReturnStatus
from orders.services.placement import IdempotencyKeyReused
from orders.services.transitions import order_events_record
from payments.enums import PaymentMethod
from payments.services import NotRefundable, refund_request
from prescriptions.services import ReturnedUnit, prescription_units_returned

logger = logging.getLogger(__name__)

RS = ReturnStatus
# The refund's cause (payments keeps one refund per cause) and the stock's reference.
CAUSE_PREFIX = "return:"
# Prescription drugs and cold-chain products come back only when something was wrong
# with them: nobody can vouch for how they were kept at the customer's.
FAULT_REASONS = frozenset({ReturnReason.DAMAGED, ReturnReason.WRONG_ITEM, ReturnReason.EXPIRED})
# What ops may say when they write received units off.
INSPECTION_WRITE_OFF_REASONS = (
    WriteOffReason.DAMAGED,
    WriteOffReason.EXPIRED,
    WriteOffReason.WRONG_ITEM,
    WriteOffReason.OTHER,
)
PARTLY_RESTOCKED = "partly_restocked"


class ReturnRefused(Exception):
    """The return conflicts with what was delivered (a 409 with `code`)."""

    code = "conflict"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotDelivered(ReturnRefused):
    code = "not_delivered"


class ReturnWindowClosed(ReturnRefused):
    code = "return_window_closed"


class NotReturnable(ReturnRefused):
    code = "not_returnable"


class QuantityExceeded(ReturnRefused):
    code = "quantity_exceeded"


class UnknownReturnSku(Exception):
    """A line names a sku the order does not have."""

    def __init__(self, index: int, sku: str) -> None:
        super().__init__(f"{sku!r} is not in this order")
        self.index, self.sku = index, sku


class RefundVpaRequired(Exception):
    """A cash-on-delivery order is paid back to a UPI id, and none was given."""


class InvalidReturnTransition(Exception):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"cannot move a return from {current} to {target}")
        self.current, self.target = current, target


class ReturnRefundRefused(Exception):
    """Payments would not write the return's refund (nothing left of the capture, or
    the payment took no money): the return was not received."""


@dataclass(frozen=True)
class ReturnLineRequest:
    sku: str
    quantity: int


@dataclass(frozen=True)
class ReturnRequested:
    """A return as `return_request` left it: new, or found by its idempotency key."""

    ret: Return
    replayed: bool


@dataclass(frozen=True)
class LineInspection:
    """Ops' verdict on one received line: restock (no reason; the stock rules may still
    write the units off, e.g. cold chain or short expiry) or write off with a reason."""

    sku: str
    write_off_reason: str | None = None


def return_list_for_order(*, order_id: uuid.UUID) -> QuerySet[Return]:
    """The order's returns, oldest first, with their lines."""
    return (
        Return.objects.filter(order_id=order_id)
        .prefetch_related("lines")
        .order_by("created_at", "pk")
    )


def return_request(
    *,
    order: Order,
    reason: str,
    lines: list[ReturnLineRequest],
    by: str,
    note: str = "",
    refund_vpa: str = "",
    idempotency_key: str | None = None,
    fingerprint: str = "",
) -> ReturnRequested:
    """Ask to return `lines` of the order's delivered units, for `reason`. Writes the
    return (`requested`) and its `return.requested` event, or nothing when it raises:
    `UnknownReturnSku`, `RefundVpaRequired` (cash on delivery without a UPI id),
    `IdempotencyKeyReused`, or a `ReturnRefused` (`NotDelivered`, `NotReturnable`,
    `ReturnWindowClosed`, `QuantityExceeded`).

    With `idempotency_key`, a second request of the same key and `fingerprint` returns
    the first return (`replayed`)."""
    with transaction.atomic():
        # Every request of this order queues on its row: the units found free here are
        # still free when the return is written, however many requests race.
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if idempotency_key is not None:
            existing = Return.objects.filter(order=locked, idempotency_key=idempotency_key).first()
            if existing is not None:
                if existing.request_fingerprint != fingerprint:
                    raise IdempotencyKeyReused(idempotency_key)
                return ReturnRequested(ret=existing, replayed=True)
        order_lines = {line.sku: line for line in locked.lines.all()}
        for index, line in enumerate(lines):
            if line.sku not in order_lines:
                raise UnknownReturnSku(index, line.sku)
        cod = locked.payment_method == PaymentMethod.COD
        if cod and not refund_vpa:
            raise RefundVpaRequired(f"order {locked.number} was paid cash on delivery")
        allocations = _allocate(locked, reason, lines)
        ret = Return.objects.create(
            order=locked,
            reason=reason,
            note=note,
            refund_amount=Decimal(0),
            # Only cash on delivery is paid out to a UPI id; a card is refunded to the card.
            refund_vpa=refund_vpa if cod else "",
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint if idempotency_key is not None else "",
        )
        rows = [
            ReturnLine(
                return_request=ret,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=order_lines[line.sku].unit_price,
                amount=to_money(order_lines[line.sku].unit_price * line.quantity),
                batches=allocations[line.sku],
            )
            for line in lines
        ]
        ReturnLine.objects.bulk_create(rows)
        ret.refund_amount = to_money(sum((row.amount for row in rows), start=Decimal(0)))
        ret.save(update_fields=["refund_amount"])
        data = {
            **_summary(ret),
            "lines": [
                {"sku": r.sku, "quantity": r.quantity, "amount": str(r.amount)} for r in rows
            ],
            "by": by,
            "note": note,
        }
        order_events_record(order_id=locked.pk, events=[(EventType.RETURN_REQUESTED, data)])
        transaction.on_commit(lambda: metrics.RETURNS_TOTAL.labels(reason=reason).inc())
    return ReturnRequested(ret=ret, replayed=False)


def _delivered_at(shipment: Shipment) -> datetime.datetime:
    # The courier's time of delivery; a shipment moved without one counts from our update.
    return shipment.status_at or shipment.updated_at


def _allocate(
    order: Order, reason: str, lines: list[ReturnLineRequest]
) -> dict[str, list[dict[str, Any]]]:
    """The delivered units each line takes, per shipment item (see the module); raises a
    `ReturnRefused` when a line cannot be had."""
    items = list(
        ShipmentItem.objects.filter(
            shipment__order_id=order.pk, shipment__status=ShipmentStatus.DELIVERED
        )
        .select_related("shipment")
        .order_by("pk")
    )
    if not items:
        raise NotDelivered(f"Nothing of order {order.number} has been delivered.")
    taken = _units_taken(order)
    products = {p.sku: p for p in Product.objects.filter(sku__in=[line.sku for line in lines])}
    schedules = dict(order.lines.values_list("sku", "schedule"))
    cutoff = timezone.now() - datetime.timedelta(days=settings.COT_RETURN_WINDOW_DAYS)
    allocations: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        delivered = [item for item in items if item.sku == line.sku]
        if not delivered:
            raise NotDelivered(f"No {line.sku} of this order has been delivered.")
        product = products.get(line.sku)
        schedule = product.schedule if product else schedules.get(line.sku)
        restricted = schedule in PRESCRIPTION_SCHEDULES or bool(product and product.cold_chain)
        if restricted and reason not in FAULT_REASONS:
            raise NotReturnable(
                f"{line.sku} is a prescription or cold-chain product: it is taken back only "
                "when damaged, wrong or expired."
            )
        in_window = [item for item in delivered if _delivered_at(item.shipment) >= cutoff]
        if not in_window:
            raise ReturnWindowClosed(
                f"{line.sku} was delivered more than {settings.COT_RETURN_WINDOW_DAYS} days ago."
            )
        wanted, entries = line.quantity, []
        for item in in_window:
            free = item.quantity - taken[item.pk]
            if wanted and free > 0:
                quantity = min(free, wanted)
                wanted -= quantity
                entries.append(
                    {
                        "shipment_item": item.pk,
                        "center": item.shipment.center,
                        "batch": item.batch,
                        "partner": item.shipment.partner,
                        "quantity": quantity,
                    }
                )
        if wanted:
            left = line.quantity - wanted
            raise QuantityExceeded(
                f"{left} unit(s) of {line.sku} can still be returned, not {line.quantity}."
            )
        allocations[line.sku] = entries
    return allocations


def _units_taken(order: Order) -> defaultdict[int, int]:
    """Units per shipment item that the order's returns (not rejected) took already."""
    taken: defaultdict[int, int] = defaultdict(int)
    batches = (
        ReturnLine.objects.filter(return_request__order=order)
        .exclude(return_request__status=RS.REJECTED)
        .values_list("batches", flat=True)
    )
    for entries in batches:
        for entry in entries:
            taken[entry["shipment_item"]] += entry["quantity"]
    return taken


def _summary(ret: Return) -> dict[str, Any]:
    return {"return": str(ret.pk), "reason": ret.reason, "refund_amount": str(ret.refund_amount)}


def _move(ret: Return, *, expected: str, to: str, **fields: Any) -> None:
    """Compare-and-set: `ret` moves to `to` only if it is still `expected` (the row's
    lock orders two movers; the second finds it moved). Raises InvalidReturnTransition."""
    now = timezone.now()
    moved = Return.objects.filter(pk=ret.pk, status=expected).update(
        status=to, updated_at=now, **fields
    )
    if not moved:
        ret.refresh_from_db(fields=["status"])
        raise InvalidReturnTransition(ret.status, to)
    ret.status, ret.updated_at = to, now
    for name, value in fields.items():
        setattr(ret, name, value)


def _pickup_partner(lines: list[ReturnLine]) -> str:
    """The partner that delivered the units (the first line's first shipment's), who
    knows the address; units from several couriers are all collected by that one."""
    for line in lines:
        for entry in line.batches:
            if entry.get("partner"):
                return entry["partner"]
    return settings.COT_LOGISTICS_PARTNERS[0]


def return_approve(*, return_id: uuid.UUID, by: str, note: str = "") -> Return:
    """Approve a requested return: book the reverse pickup with the partner that
    delivered the units (key `return:<id>:pickup`, so a repeat books nothing more), then
    move it to `approved` with the pickup's partner and AWB and record `return.approved`.

    Raises InvalidReturnTransition when it is not `requested` (nothing is booked then),
    `logistics.services.returns.PickupRefused` or an `ExternalError` when the partner
    refused or could not be reached (it stays `requested`; approve again later)."""
    ret = Return.objects.select_related("order").get(pk=return_id)
    if ret.status != RS.REQUESTED:
        raise InvalidReturnTransition(ret.status, RS.APPROVED)
    lines = list(ret.lines.all())
    # Booked before the move, outside any transaction (it waits on the partner): an
    # approved return always has its pickup.
    pickup = reverse_pickup_book(
        partner=_pickup_partner(lines),
        reference=ret.order.number,
        pincode=ret.order.delivery_address["pincode"],
        items=[PickupItem(sku=line.sku, quantity=line.quantity) for line in lines],
        idempotency_key=f"{CAUSE_PREFIX}{ret.pk}:pickup",
    )
    with transaction.atomic():
        try:
            _move(
                ret,
                expected=RS.REQUESTED,
                to=RS.APPROVED,
                pickup_partner=pickup.partner,
                pickup_awb=pickup.awb,
                pickup_date=pickup.pickup_date,
                decided_by=by,
                decision_note=note,
            )
        except InvalidReturnTransition:
            if ret.status == RS.REJECTED:
                logger.warning(
                    "reverse pickup %s at %s booked for return %s, rejected meanwhile: "
                    "cancel it with the partner",
                    pickup.awb,
                    pickup.partner,
                    ret.pk,
                    extra={"order_id": str(ret.order_id)},
                )
            raise
        data = {
            **_summary(ret),
            "partner": pickup.partner,
            "awb": pickup.awb,
            "by": by,
            "note": note,
        }
        order_events_record(order_id=ret.order_id, events=[(EventType.RETURN_APPROVED, data)])
    return ret


def return_reject(*, return_id: uuid.UUID, by: str, note: str) -> Return:
    """Reject a requested return (its units may be asked for again); `note` says why and
    goes on the timeline (`return.rejected`). Raises InvalidReturnTransition when it is
    not `requested`."""
    ret = Return.objects.get(pk=return_id)
    with transaction.atomic():
        _move(ret, expected=RS.REQUESTED, to=RS.REJECTED, decided_by=by, decision_note=note)
        data = {**_summary(ret), "by": by, "note": note}
        order_events_record(order_id=ret.order_id, events=[(EventType.RETURN_REJECTED, data)])
    return ret


def return_receive(
    *, return_id: uuid.UUID, by: str, inspections: list[LineInspection], note: str = ""
) -> Return:
    """The approved return's units arrived and ops inspected each line: in one
    transaction, each batch's units are taken back (restocked, or written off with ops'
    reason or by the stock rules), the prescription quantities they drew given back (and
    the Schedule H1 register told), the refund of `refund_amount` written (paid out to
    `refund_vpa` for cash on delivery; sent after commit), the return moved to `received`
    and the timeline told (`inventory.restocked`/`inventory.written_off` per batch, then
    `return.received`). When no money is to move (cash not collected yet: the amount due
    shrinks instead) it is `refunded` at once.

    Raises ValueError for a line without a verdict or an unknown reason,
    InvalidReturnTransition when it is not `approved`, ReturnRefundRefused when payments
    would not write the refund (then nothing changed)."""
    verdicts = {i.sku: i.write_off_reason or None for i in inspections}
    for reason in verdicts.values():
        if reason is not None and reason not in INSPECTION_WRITE_OFF_REASONS:
            raise ValueError(f"unknown write-off reason {reason!r}")
    ret = Return.objects.select_related("order").get(pk=return_id)
    lines = list(ret.lines.all())
    missing = sorted({line.sku for line in lines} - set(verdicts))
    if missing:
        raise ValueError(f"no verdict for {', '.join(missing)}")
    order = ret.order
    reference = f"{CAUSE_PREFIX}{ret.pk}"
    with transaction.atomic():
        _move(ret, expected=RS.APPROVED, to=RS.RECEIVED, decided_by=by, decision_note=note)
        events: list[tuple[str, dict[str, Any] | None]] = []
        units: list[ReturnedUnit] = []
        for line in lines:
            events += _take_back(order, line, reference, verdicts[line.sku], by, note)
            units += [
                ReturnedUnit(sku=line.sku, batch=entry["batch"], quantity=entry["quantity"])
                for entry in line.batches
            ]
        prescription_units_returned(
            order_id=order.pk, order_number=order.number, reference=reference, lines=units
        )
        cod = order.payment_method == PaymentMethod.COD
        try:
            refund = refund_request(
                order_id=order.pk,
                amount=ret.refund_amount,
                cause=reference,
                reason=f"return ({ret.reason})",
                by=by,
                vpa=ret.refund_vpa if cod else "",
                token=order.payment_token,
            )
        except NotRefundable as exc:
            raise ReturnRefundRefused(str(exc)) from exc
        events.append(
            (
                EventType.RETURN_RECEIVED,
                {
                    **_summary(ret),
                    "lines": [
                        {
                            "sku": line.sku,
                            "quantity": line.quantity,
                            "amount": str(line.amount),
                            "outcome": line.outcome,
                            "write_off_reason": line.write_off_reason or None,
                        }
                        for line in lines
                    ],
                    "by": by,
                    "note": note,
                },
            )
        )
        if refund is None:
            _move(ret, expected=RS.RECEIVED, to=RS.REFUNDED)
            events.append(
                (
                    EventType.RETURN_REFUNDED,
                    {**_summary(ret), "amount": str(ret.refund_amount), "refund": None},
                )
            )
        order_events_record(order_id=order.pk, events=events)
    return ret


def _take_back(
    order: Order,
    line: ReturnLine,
    reference: str,
    write_off_reason: str | None,
    by: str,
    note: str,
) -> list[tuple[str, dict[str, Any] | None]]:
    """Take one line's units back into the batches they left; records each batch's
    outcome on the line and returns the inventory events."""
    per_batch: dict[tuple[str, str], int] = defaultdict(int)
    for entry in line.batches:
        per_batch[(entry["center"], entry["batch"])] += entry["quantity"]
    outcomes: dict[tuple[str, str], tuple[str, str]] = {}
    events: list[tuple[str, dict[str, Any] | None]] = []
    for (center, batch), quantity in per_batch.items():
        taken = stock_take_back(
            order_id=order.pk,
            reference=reference,
            center=center,
            sku=line.sku,
            batch=batch,
            quantity=quantity,
            write_off_reason=write_off_reason,
            by=by,
            note=note,
        )
        outcomes[(center, batch)] = (taken.outcome, taken.reason)
        restocked = taken.outcome == StockReturnOutcome.RESTOCKED
        events.append(
            (
                EventType.INVENTORY_RESTOCKED if restocked else EventType.INVENTORY_WRITTEN_OFF,
                {
                    "sku": line.sku,
                    "batch": batch,
                    "center": center,
                    "quantity": quantity,
                    "reason": taken.reason or None,
                    "reference": reference,
                },
            )
        )
    for entry in line.batches:
        entry["outcome"], entry["reason"] = outcomes[(entry["center"], entry["batch"])]
    kinds = {outcome for outcome, _ in outcomes.values()}
    line.outcome = kinds.pop() if len(kinds) == 1 else PARTLY_RESTOCKED
    line.write_off_reason = next((reason for outcome, reason in outcomes.values() if reason), "")
    line.save(update_fields=["batches", "outcome", "write_off_reason"])
    return events


def return_refunded(*, order_id: uuid.UUID, data: dict[str, Any]) -> bool:
    """Payments made a refund whose cause is a return (`data["cause"]`): move that return
    from `received` to `refunded` and record `return.refunded`, once. Runs inside the
    refund's transaction. Returns True when it moved."""
    cause = data.get("cause") or ""
    if not cause.startswith(CAUSE_PREFIX):
        return False
    try:
        return_id = uuid.UUID(cause.removeprefix(CAUSE_PREFIX))
    except ValueError:
        return False
    ret = Return.objects.filter(pk=return_id, order_id=order_id).first()
    if ret is None:
        return False
    try:
        _move(ret, expected=RS.RECEIVED, to=RS.REFUNDED)
    except InvalidReturnTransition:
        return False  # a replay of the news: it was recorded the first time
    event = {**_summary(ret), "amount": data.get("amount"), "refund": data.get("refund")}
    order_events_record(order_id=order_id, events=[(EventType.RETURN_REFUNDED, event)])
    return True
