"""The chord body's decision: what the three header steps' recorded outcomes (the
prescription check, the stock reservation, the payment preparation) mean for the order.

It reads the outcomes from the database, never from the chord's result list: a header
task redelivered after the body fired cannot change what was decided.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core.money import to_money
from inventory.services import stock_release_held_sku
from orders.enums import EventType, FailureReason, LineStatus, OnPartial, OrderStatus, Step
from orders.models import Order, OrderLine, OrderStep
from orders.services.ending import order_end
from orders.services.step_runs import StepIncomplete
from orders.services.transitions import order_event_record, order_events_record, order_transition
from payments.services import payment_amount_set
from prescriptions.enums import CheckResult
from prescriptions.services import (
    PASSING,
    RxItemRequest,
    RxLine,
    prescription_check,
    prescription_check_lines,
    prescription_dispense,
)

S = OrderStatus
HEADER_STEPS = (Step.PRESCRIPTION, Step.STOCK, Step.PAYMENT_PREPARE)
Events = list[tuple[str, dict[str, Any]]]


def _rx_sku(line: OrderLine) -> str:
    # A substitute the customer accepted is checked and claimed as the line it replaced
    # (same composition): the prescription names the original.
    return line.substituted_for or line.sku


def _rx_lines(order_lines: list[OrderLine]) -> list[RxLine]:
    return [RxLine(sku=_rx_sku(l), quantity=l.quantity, schedule=l.schedule) for l in order_lines]


def _line_verdicts(order: Order, order_lines: list[OrderLine]) -> dict[str, str]:
    """The line's sku -> its Rx verdict now."""
    verdicts = prescription_check_lines(
        client_id=order.client_id,
        customer_id=order.customer_id,
        prescription_id=order.prescription_id,
        lines=_rx_lines(order_lines),
        ordered_on=order.created_at.date(),
    )
    return {line.sku: verdicts[_rx_sku(line)] for line in order_lines if _rx_sku(line) in verdicts}


def prescription_verdict(order: Order, order_lines: list[OrderLine]) -> tuple[str, Events]:
    """The Rx rules' result for this order now, and the timeline events it warrants."""
    result = prescription_check(
        client_id=order.client_id,
        customer_id=order.customer_id,
        prescription_id=order.prescription_id,
        lines=_rx_lines(order_lines),
        ordered_on=order.created_at.date(),
    )
    events: list[tuple[str, dict[str, Any]]] = []
    if result == CheckResult.OK and any(line.requires_prescription for line in order_lines):
        events.append(
            (EventType.PRESCRIPTION_VALIDATED, {"prescription_id": str(order.prescription_id)})
        )
    elif result not in (CheckResult.OK, CheckResult.ON_HOLD):
        events.append((EventType.PRESCRIPTION_FAILED, {"reason": str(result)}))
    return result, events


def lines_failing(order: Order, order_lines: list[OrderLine]) -> dict[str, str]:
    """sku -> the rule each of these lines fails now, in line order (a pure read: the
    header steps of a `ship_available` order each look for themselves)."""
    verdicts = _line_verdicts(order, order_lines)
    return {sku: str(verdict) for sku, verdict in verdicts.items() if verdict not in PASSING}


def prescription_partial_verdict(
    order: Order, order_lines: list[OrderLine]
) -> tuple[str, Events, dict[str, str]]:
    """For a `ship_available` order: the result for the lines that pass the Rx rules
    (OK or ON_HOLD), the events, and the lines that fail (sku -> reason), to be dropped.
    When every line fails, the first line's failure is the result, as for any order."""
    verdicts = _line_verdicts(order, order_lines)
    dropped = {sku: str(v) for sku, v in verdicts.items() if v not in PASSING}
    kept = [line for line in order_lines if line.sku not in dropped]
    if not kept:
        reason = next(iter(dropped.values()))
        return reason, [(EventType.PRESCRIPTION_FAILED, {"reason": reason})], dropped
    events: Events = [
        (EventType.PRESCRIPTION_LINE_REJECTED, {"sku": sku, "reason": reason})
        for sku, reason in dropped.items()
    ]
    if any(verdicts[line.sku] == CheckResult.ON_HOLD for line in kept):
        return CheckResult.ON_HOLD, events, dropped
    if any(line.requires_prescription for line in kept):
        events.append(
            (EventType.PRESCRIPTION_VALIDATED, {"prescription_id": str(order.prescription_id)})
        )
    return CheckResult.OK, events, dropped


def prescription_recheck(order: Order) -> str:
    """Re-apply the Rx rules to an order that waited for a review, and record the new
    verdict once (compare-and-set on the step's `on_hold` result). A `ship_available`
    order drops the lines that fail now (a line the pharmacist struck out) and goes on
    with the rest."""
    if order.on_partial == OnPartial.SHIP_AVAILABLE:
        active = list(order.lines.filter(status=LineStatus.ACTIVE))
        result, events, dropped = prescription_partial_verdict(order, active)
        # The line events are written by the drop itself, once per line.
        events = [e for e in events if e[0] != EventType.PRESCRIPTION_LINE_REJECTED]
    else:
        result, events = prescription_verdict(order, list(order.lines.all()))
        dropped = {}
    if result == CheckResult.ON_HOLD:
        return result
    with transaction.atomic():
        step = OrderStep.objects.filter(order=order, step=Step.PRESCRIPTION)
        updated = step.filter(result=CheckResult.ON_HOLD).update(
            ok=result == CheckResult.OK, result=result
        )
        reason = None
        if updated and result == CheckResult.OK and dropped:
            reason = order_lines_drop(order=order, dropped=dropped)
        if reason is not None:
            # The lines left changed meanwhile and none would remain.
            events = [(EventType.PRESCRIPTION_FAILED, {"reason": reason})]
            step.update(ok=False, result=reason)
        if updated:
            order_events_record(order_id=order.pk, events=events)
    return step.get().result


def order_lines_drop(
    *, order: Order, dropped: dict[str, str], announced: frozenset[str] = frozenset()
) -> str | None:
    """Drop these lines (sku -> the rule each failed) from a running `ship_available`
    order before its charge, once: the lines are marked dropped, their held stock goes
    back, the stock step's allocations (what booking and the H1 register read) lose them,
    and the order's total and its payment's amount become the active lines' total. A
    `prescription.line_rejected` event for each line dropped, unless `announced` already.

    Returns the first line's reason, changing nothing, when no active line would remain
    (the order is to be rejected); None otherwise, also when nothing was left to drop or
    the order ended meanwhile (its ending releases everything)."""
    with transaction.atomic():
        # The order row first, as the charge and partial cancels take it: nobody changes
        # the lines or the payment meanwhile.
        status = Order.objects.select_for_update().values_list("status", flat=True).get(pk=order.pk)
        if status not in (S.PROCESSING, S.ON_HOLD):
            return None
        active = list(OrderLine.objects.filter(order=order, status=LineStatus.ACTIVE))
        leaving = [line for line in active if line.sku in dropped]
        if not leaving:
            return None
        if len(leaving) == len(active):
            return dropped[leaving[0].sku]
        for line in leaving:
            OrderLine.objects.filter(pk=line.pk, status=LineStatus.ACTIVE).update(
                status=LineStatus.DROPPED, drop_reason=dropped[line.sku]
            )
            stock_release_held_sku(order_id=order.pk, sku=line.sku)
        leaving_skus = {line.sku for line in leaving}
        stock = OrderStep.objects.select_for_update().filter(order=order, step=Step.STOCK).first()
        if stock is not None and "allocations" in stock.data:
            data = dict(stock.data)
            data["allocations"] = [a for a in data["allocations"] if a["sku"] not in leaving_skus]
            OrderStep.objects.filter(pk=stock.pk).update(data=data)
        total = to_money(sum((l.line_total for l in active if l.sku not in leaving_skus), start=0))
        Order.objects.filter(pk=order.pk).update(total_amount=total)
        order.total_amount = total
        payment_amount_set(order_id=order.pk, amount=total)
        order_events_record(
            order_id=order.pk,
            events=[
                (
                    EventType.PRESCRIPTION_LINE_REJECTED,
                    {"sku": line.sku, "reason": dropped[line.sku]},
                )
                for line in leaving
                if line.sku not in announced
            ],
        )
    return None


def _partial_decide(order: Order, steps: dict[str, OrderStep]) -> str | None:
    """A `ship_available` order's lines dropped by the header: what the prescription step
    found failing and what the stock step left unreserved (their reads raced; a line
    either one did not clear is never shipped). Returns the rejection reason when no line
    remains."""
    announced = steps[Step.PRESCRIPTION].data.get("dropped", {})
    dropped = {**steps[Step.STOCK].data.get("skipped", {}), **announced}
    if dropped:
        reason = order_lines_drop(order=order, dropped=dropped, announced=frozenset(announced))
        if reason is not None:
            return reason
    # Always: the payment was prepared from the payment step's own read of the lines.
    order.total_amount = Order.objects.values_list("total_amount", flat=True).get(pk=order.pk)
    payment_amount_set(order_id=order.pk, amount=order.total_amount)
    return None


def order_header_decide(order: Order, steps: dict[str, OrderStep]) -> str | None:
    """Reject, hold, or let the charge go ahead (None). A rejection or a hold is applied
    here (compare-and-set) and the status it leads to returned.

    Raises StepIncomplete while a header step has not recorded its outcome."""
    if any(step not in steps or steps[step].ok is None for step in HEADER_STEPS):
        raise StepIncomplete(f"order {order.pk}: header steps not all recorded")
    for step in (Step.PRESCRIPTION, Step.STOCK):
        if not steps[step].ok:
            order_end(order=order, to=S.REJECTED, reason=steps[step].result)
            return S.REJECTED
    partial = order.on_partial == OnPartial.SHIP_AVAILABLE
    if partial and (reason := _partial_decide(order, steps)) is not None:
        order_event_record(
            order_id=order.pk, type=EventType.PRESCRIPTION_FAILED, data={"reason": reason}
        )
        order_end(order=order, to=S.REJECTED, reason=reason)
        return S.REJECTED
    if steps[Step.PRESCRIPTION].result == CheckResult.ON_HOLD:
        # The review may have happened while the header ran: look again before waiting.
        result = prescription_recheck(order)
        if result == CheckResult.ON_HOLD:
            order_transition(order=order, to=S.ON_HOLD, expected=S.PROCESSING)
            return S.ON_HOLD
        if result != CheckResult.OK:
            order_end(order=order, to=S.REJECTED, reason=result)
            return S.REJECTED
    if not _claim_prescribed_quantities(order):
        order_event_record(
            order_id=order.pk,
            type=EventType.PRESCRIPTION_FAILED,
            data={"reason": FailureReason.PRESCRIPTION_QUANTITY_EXCEEDED},
        )
        order_end(order=order, to=S.REJECTED, reason=FailureReason.PRESCRIPTION_QUANTITY_EXCEEDED)
        return S.REJECTED
    return None


def _claim_prescribed_quantities(order: Order) -> bool:
    """Claim the Rx lines from the prescription before any money moves, so two orders
    racing for its last remaining quantity never both get it (and nobody is charged for
    an order that cannot be served). Returned when the order fails or is cancelled."""
    if order.prescription_id is None:
        return True  # no prescription, nothing to claim (the lines are not even read)
    rx_lines = [
        RxItemRequest(sku=_rx_sku(line), quantity=line.quantity)
        for line in order.lines.filter(status=LineStatus.ACTIVE)
        if line.requires_prescription
    ]
    if not rx_lines:
        return True
    return prescription_dispense(
        order_id=order.pk, prescription_id=order.prescription_id, lines=rx_lines
    )
