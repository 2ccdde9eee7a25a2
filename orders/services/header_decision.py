"""The chord body's decision: what the three header steps' recorded outcomes (the
prescription check, the stock reservation, the payment preparation) mean for the order.

It reads the outcomes from the database, never from the chord's result list: a header
task redelivered after the body fired cannot change what was decided.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from orders.enums import EventType, FailureReason, OrderStatus, Step
from orders.models import Order, OrderLine, OrderStep
from orders.services.ending import order_end
from orders.services.step_runs import StepIncomplete
from orders.services.transitions import order_event_record, order_events_record, order_transition
from prescriptions.enums import CheckResult
from prescriptions.services import RxItemRequest, RxLine, prescription_check, prescription_dispense

S = OrderStatus
HEADER_STEPS = (Step.PRESCRIPTION, Step.STOCK, Step.PAYMENT_PREPARE)


def prescription_verdict(
    order: Order, order_lines: list[OrderLine]
) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """The Rx rules' result for this order now, and the timeline events it warrants."""
    lines = [RxLine(sku=l.sku, quantity=l.quantity, schedule=l.schedule) for l in order_lines]
    result = prescription_check(
        client_id=order.client_id,
        customer_id=order.customer_id,
        prescription_id=order.prescription_id,
        lines=lines,
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


def prescription_recheck(order: Order) -> str:
    """Re-apply the Rx rules to an order that waited for a review, and record the new
    verdict once (compare-and-set on the step's `on_hold` result)."""
    result, events = prescription_verdict(order, list(order.lines.all()))
    if result == CheckResult.ON_HOLD:
        return result
    with transaction.atomic():
        updated = OrderStep.objects.filter(
            order=order, step=Step.PRESCRIPTION, result=CheckResult.ON_HOLD
        ).update(ok=result == CheckResult.OK, result=result)
        if updated:
            order_events_record(order_id=order.pk, events=events)
    return OrderStep.objects.get(order=order, step=Step.PRESCRIPTION).result


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
        RxItemRequest(sku=line.sku, quantity=line.quantity)
        for line in order.lines.all()
        if line.requires_prescription
    ]
    if not rx_lines:
        return True
    return prescription_dispense(
        order_id=order.pk, prescription_id=order.prescription_id, lines=rx_lines
    )
