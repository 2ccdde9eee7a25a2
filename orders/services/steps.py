"""The pipeline's steps. Each takes an order id, is idempotent, and records its outcome
in the database (`OrderStep`), so that redelivered tasks, a re-driving sweeper and two
workers on one order all end in the same place. A business "no" is an outcome, not an
exception; exceptions mean infrastructure trouble and make the caller retry.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from core import faults, metrics
from core.http import ExternalError
from core.prepared import Bind, Prepared
from inventory.services import (
    LineRequest,
    stock_commit,
    stock_release,
    stock_reserve,
    stock_restock,
)
from logistics.services import ParcelItem, shipment_book, shipment_cancel
from orders.enums import EventType, FailureReason, OrderStatus, Step
from orders.models import Order, OrderLine, OrderStep
from orders.services.transitions import (
    order_event_record,
    order_events_record,
    order_step_record,
    order_transition,
)
from payments.enums import PaymentStatus
from payments.services import payment_cancel, payment_charge, payment_prepare
from prescriptions.enums import CheckResult
from prescriptions.services import (
    H1Line,
    RxItemRequest,
    RxLine,
    h1_register_record,
    prescription_check,
    prescription_dispense,
    prescription_return,
)

S = OrderStatus
ENDED = frozenset({S.REJECTED, S.PAYMENT_FAILED, S.CANCELLED})
ENDABLE = frozenset({S.RECEIVED, S.PROCESSING, S.ON_HOLD})
# Cancellation (by the client or ops) is allowed until the order ships.
CANCELLABLE = ENDABLE | {S.CONFIRMED}
HEADER_STEPS = (Step.PRESCRIPTION, Step.STOCK, Step.PAYMENT_PREPARE)


class StepIncomplete(Exception):
    """A step ran before the steps it depends on recorded their outcome: retry later."""


class NeedsAttention(Exception):
    """The order is flagged `needs_attention`: no step runs until a person clears it."""


def _guard(order: Order) -> None:
    if order.needs_attention:
        raise NeedsAttention(f"order {order.pk} needs attention")


_PK = Order._meta.pk
# The statements every order runs, compiled once per process (core.prepared).
_ORDER = Prepared(lambda: Order.objects.filter(pk=Bind("pk", _PK)))
_STATUS = Prepared(
    lambda: Order.objects.filter(pk=Bind("pk", _PK)).values_list("status", flat=True)
)
_ROWS_WITH_ORDER = {
    OrderLine: Prepared(
        lambda: OrderLine.objects.select_related("order").filter(order_id=Bind("order_id", _PK))
    ),
    OrderStep: Prepared(
        lambda: OrderStep.objects.select_related("order").filter(order_id=Bind("order_id", _PK))
    ),
}
_PROCESSING_LOCKED = Prepared(
    lambda: (
        Order.objects.select_for_update()
        .filter(pk=Bind("pk", _PK), status=S.PROCESSING)
        .values_list("pk", flat=True)
    )
)
_CONFIRM_ORDER = Prepared(
    lambda: (
        Order.objects.select_for_update()
        .annotate(
            booked=Exists(
                OrderStep.objects.filter(order=OuterRef("pk"), step=Step.SHIPMENT, ok=True)
            )
        )
        .filter(pk=Bind("pk", _PK))
    )
)


def _load(order_id: uuid.UUID, rows: type[OrderLine] | type[OrderStep]) -> tuple[Order, list]:
    """The order and its lines (or steps) in one query: the rows, with their order joined.
    Only an order without such rows needs a second query."""
    found = _ROWS_WITH_ORDER[rows].all(order_id=order_id)
    if not found:
        return _ORDER.get(pk=order_id), []
    return found[0].order, found


def _status(order: Order) -> str:
    """The order's status now (what `refresh_from_db(fields=["status"])` reads), set on it."""
    order.status = _STATUS.get(pk=order.pk)
    return order.status


def _begin(
    order_id: uuid.UUID, step: str, *, lines: bool = False
) -> tuple[Order, list[OrderLine], OrderStep]:
    """Load the order (with its lines if asked), move it from received to processing if
    this is the first step to run, and count this run of `step` (`_step_begin`), the move
    and the count in one transaction."""
    if lines:
        order, order_lines = _load(order_id, OrderLine)
    else:
        order, order_lines = _ORDER.get(pk=order_id), []
    _guard(order)
    if order.status != S.RECEIVED:
        return order, order_lines, _step_begin(order, step)
    with transaction.atomic():
        moved = order_transition(order=order, to=S.PROCESSING, expected=S.RECEIVED)
        row = _step_count(order.pk, step)
    if not moved:
        # Another step moved it first (or someone ended it): see where it is now.
        order.refresh_from_db(fields=["status", "updated_at"])
    return order, order_lines, _step_check(order, step, row)


# A first run inserts the row with one attempt; a re-run of an unfinished step adds one;
# a finished step's row comes back unchanged. One statement (PostgreSQL and SQLite both
# have INSERT ... ON CONFLICT ... RETURNING), committed on its own outside a transaction.
_STEP_COUNT_SQL = """
INSERT INTO orders_orderstep
    (created_at, updated_at, order_id, step, ok, result, data, attempts)
VALUES (%s, %s, %s, %s, NULL, '', '{{}}', 1)
ON CONFLICT (order_id, step) DO UPDATE SET attempts = orders_orderstep.attempts
    + CASE WHEN orders_orderstep.ok IS NULL THEN 1 ELSE 0 END
RETURNING {columns}
"""


class _StepCount:
    """`_STEP_COUNT_SQL` for one database, and how its row becomes an `OrderStep`: the
    ORM's converters for each column (a JSON column comes back as text on PostgreSQL,
    SQLite gives datetimes, UUIDs and booleans as text and numbers)."""

    def __init__(self, connection: Any) -> None:
        fields = OrderStep._meta.concrete_fields
        self.sql = _STEP_COUNT_SQL.format(
            columns=", ".join(connection.ops.quote_name(f.column) for f in fields)
        )
        self.attnames = [f.attname for f in fields]
        compiler = OrderStep.objects.none().query.get_compiler(connection=connection)
        table = OrderStep._meta.db_table
        self.converters = compiler.get_converters([f.get_col(table) for f in fields])
        self.apply_converters = compiler.apply_converters
        self.created_at = OrderStep._meta.get_field("created_at")
        self.order_id = OrderStep._meta.get_field("order")

    def run(self, connection: Any, order_id: uuid.UUID, step: str) -> OrderStep:
        now = self.created_at.get_db_prep_value(timezone.now(), connection)
        params = [now, now, self.order_id.get_db_prep_value(order_id, connection), str(step)]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if self.converters:
            rows = list(self.apply_converters(rows, self.converters))
        [row] = rows
        return OrderStep.from_db(connection.alias, self.attnames, row)


_step_counts: dict[tuple[str, str], _StepCount] = {}


def _step_count(order_id: uuid.UUID, step: str) -> OrderStep:
    connection = transaction.get_connection()
    key = (connection.alias, connection.vendor)
    statement = _step_counts.get(key)
    if statement is None:
        statement = _step_counts[key] = _StepCount(connection)
    return statement.run(connection, order_id, step)


def _step_begin(order: Order, step: str) -> OrderStep:
    """Count a run of an unfinished step (committed before the step does anything, so a
    run that kills its worker is counted too); past COT_STEP_MAX_ATTEMPTS the order is
    flagged and NeedsAttention raised instead of running the step again."""
    return _step_check(order, step, _step_count(order.pk, step))


def _step_check(order: Order, step: str, row: OrderStep) -> OrderStep:
    if row.ok is None:
        if row.attempts > settings.COT_STEP_MAX_ATTEMPTS:
            order_flag_needs_attention(order_id=order.pk, step=step, attempts=row.attempts - 1)
            raise NeedsAttention(f"order {order.pk}: step {step} ran {row.attempts - 1} times")
        faults.fault_crash_point(f"{faults.CRASH_IN_STEP}{step}")
    return row


def order_flag_needs_attention(*, order_id: uuid.UUID, step: str, attempts: int) -> bool:
    """Flag the order for a person (compare-and-set, one event however many deliveries)."""
    with transaction.atomic():
        flagged = Order.objects.filter(pk=order_id, needs_attention=False).update(
            needs_attention=True, updated_at=timezone.now()
        )
        if flagged:
            order_event_record(
                order_id=order_id,
                type=EventType.ORDER_NEEDS_ATTENTION,
                data={"step": step, "attempts": attempts},
            )
    return bool(flagged)


def order_clear_needs_attention(*, order_id: uuid.UUID) -> bool:
    """A person looked (and fixed the cause): unflag the order and give its unfinished
    steps a fresh count. The caller re-drives it."""
    with transaction.atomic():
        cleared = Order.objects.filter(pk=order_id, needs_attention=True).update(
            needs_attention=False, updated_at=timezone.now()
        )
        if cleared:
            OrderStep.objects.filter(order_id=order_id, ok__isnull=True).update(attempts=0)
    return bool(cleared)


def _step_finish(
    row: OrderStep,
    *,
    ok: bool,
    result: str,
    data: dict[str, Any] | None = None,
    events: list[tuple[str, dict[str, Any]]] = (),
    order: Order | None = None,
) -> OrderStep:
    """Record the outcome once, with its events; a concurrent run that finished first wins.
    With `order`, also set its status to what it is now (read with the outcome when this
    run recorded it): a step that charged or booked looks for a cancellation meanwhile."""
    status = order_step_record(step=row, ok=ok, result=result, data=data or {}, events=events)
    if status is not None:
        # What was just written is the row's outcome; reading it back is one query per step.
        row.ok, row.result, row.data = ok, result, data or {}
        if order is not None:
            order.status = status
    else:
        row.refresh_from_db()
        if order is not None:
            _status(order)
    return row


def _prescription_verdict(
    order: Order, order_lines: list[OrderLine]
) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """The Rx rules' result for this order now, and the timeline events it warrants."""
    lines = [RxLine(sku=l.sku, quantity=l.quantity, schedule=l.schedule) for l in order_lines]
    result = prescription_check(
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


def order_check_prescription(order_id: uuid.UUID) -> str:
    order, lines, row = _begin(order_id, Step.PRESCRIPTION, lines=True)
    if row.ok is not None or order.status != S.PROCESSING:
        return row.result
    result, events = _prescription_verdict(order, lines)
    ok = result in (CheckResult.OK, CheckResult.ON_HOLD)
    return _step_finish(row, ok=ok, result=result, events=events).result


def _prescription_recheck(order: Order) -> str:
    """Re-apply the Rx rules to an order that waited for a review, and record the new
    verdict once (compare-and-set on the step's `on_hold` result)."""
    result, events = _prescription_verdict(order, list(order.lines.all()))
    if result == CheckResult.ON_HOLD:
        return result
    with transaction.atomic():
        updated = OrderStep.objects.filter(
            order=order, step=Step.PRESCRIPTION, result=CheckResult.ON_HOLD
        ).update(ok=result == CheckResult.OK, result=result)
        if updated:
            order_events_record(order_id=order.pk, events=events)
    return OrderStep.objects.get(order=order, step=Step.PRESCRIPTION).result


def order_resume_after_review(order_id: uuid.UUID) -> str:
    """A pharmacist decided on the prescription an on-hold order waits for: continue to
    payment (approved) or end it (rejected). Exactly one caller moves the order."""
    order = Order.objects.get(pk=order_id)
    if order.status != S.ON_HOLD:
        return order.status
    result = _prescription_recheck(order)
    if result == CheckResult.ON_HOLD:
        return S.ON_HOLD
    if result != CheckResult.OK:
        order_end(order=order, to=S.REJECTED, reason=result)
        return S.REJECTED
    if order_transition(order=order, to=S.PROCESSING, expected=S.ON_HOLD):
        from orders import pipeline

        transaction.on_commit(lambda: pipeline.resume(order.pk))
    return S.PROCESSING


def order_reserve_stock(order_id: uuid.UUID) -> str:
    order, lines, row = _begin(order_id, Step.STOCK, lines=True)
    if row.ok is not None or order.status != S.PROCESSING:
        return row.result
    outcome = stock_reserve(
        order_id=order.pk,
        lines=[LineRequest(sku=l.sku, quantity=l.quantity) for l in lines],
        pincode=order.delivery_address["pincode"],
    )
    allocations = [asdict(a) for a in outcome.allocations]
    if outcome.ok:
        event = (EventType.INVENTORY_RESERVED, {"allocations": allocations})
    else:
        event = (EventType.INVENTORY_INSUFFICIENT, {"reason": outcome.reason})
    return _step_finish(
        row,
        ok=outcome.ok,
        result="reserved" if outcome.ok else str(outcome.reason),
        data={"allocations": allocations},
        events=[event],
    ).result


def order_prepare_payment(order_id: uuid.UUID) -> str:
    order, _, row = _begin(order_id, Step.PAYMENT_PREPARE)
    if row.ok is not None or order.status != S.PROCESSING:
        return row.result
    payment = payment_prepare(
        order_id=order.pk, method=order.payment_method, amount=order.total_amount
    )
    event = (
        EventType.PAYMENT_PREPARED,
        {"method": payment.method, "gateway": payment.gateway, "amount": str(payment.amount)},
    )
    return _step_finish(row, ok=True, result="prepared", events=[event]).result


def order_charge_payment(order_id: uuid.UUID) -> str:
    """The chord's body: decide from the three recorded outcomes, then charge."""
    order, rows = _load(order_id, OrderStep)
    _guard(order)
    if order.status != S.PROCESSING:
        return order.status
    steps = {s.step: s for s in rows}
    if any(step not in steps or steps[step].ok is None for step in HEADER_STEPS):
        raise StepIncomplete(f"order {order_id}: header steps not all recorded")
    for step in (Step.PRESCRIPTION, Step.STOCK):
        if not steps[step].ok:
            order_end(order=order, to=S.REJECTED, reason=steps[step].result)
            return S.REJECTED
    if steps[Step.PRESCRIPTION].result == CheckResult.ON_HOLD:
        # The review may have happened while the header ran: look again before waiting.
        result = _prescription_recheck(order)
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
    row = _step_begin(order, Step.CHARGE)
    if row.ok is not None:
        return row.result
    outcome = payment_charge(
        order_id=order.pk,
        token=order.payment_token,
        proceed=lambda: _lock_if_processing(order.pk),
    )
    if outcome.status == PaymentStatus.DECLINED:
        _step_finish(row, ok=False, result=FailureReason.PAYMENT_DECLINED)
        order_end(order=order, to=S.PAYMENT_FAILED, reason=FailureReason.PAYMENT_DECLINED)
        return S.PAYMENT_FAILED
    if outcome.status not in (PaymentStatus.CAPTURED, PaymentStatus.PENDING_COLLECTION):
        # Not charged: the order was ended before its charge could start (expiry, a
        # cancellation), or its payment was voided or refunded under a running order.
        # Either way this order cannot be paid: end it unless someone already did.
        _step_finish(row, ok=False, result=FailureReason.PAYMENT_UNAVAILABLE)
        order_end(order=order, to=S.PAYMENT_FAILED, reason=FailureReason.PAYMENT_UNAVAILABLE)
        order.refresh_from_db(fields=["status"])
        return order.status
    events = []
    if outcome.status == PaymentStatus.CAPTURED:
        events.append((EventType.PAYMENT_CAPTURED, {"amount": str(order.total_amount)}))
    row = _step_finish(row, ok=True, result=outcome.status, events=events, order=order)
    if outcome.status == PaymentStatus.CAPTURED:
        transaction.on_commit(lambda: metrics.REVENUE_TOTAL.inc(float(order.total_amount)))
    if order.status != S.PROCESSING:
        # Ended (cancelled) while we were charging: make sure the money goes back.
        from orders import pipeline

        pipeline.compensate(order.pk)
    return row.result


def _lock_if_processing(order_id: uuid.UUID) -> bool:
    """Lock the order's row and say whether it may still be charged (see the expiry job,
    which takes the same lock before it labels an order by its charge)."""
    return bool(_PROCESSING_LOCKED.all(pk=order_id))


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


def order_book_shipment(order_id: uuid.UUID) -> str:
    order, rows = _load(order_id, OrderStep)
    _guard(order)
    if order.status != S.PROCESSING:
        return order.status
    steps = {s.step: s for s in rows}
    if Step.CHARGE not in steps or not steps[Step.CHARGE].ok:
        raise StepIncomplete(f"order {order_id}: not charged yet")
    row = _step_begin(order, Step.SHIPMENT)
    if row.ok is not None:
        return row.result
    parcels: dict[str, list[ParcelItem]] = defaultdict(list)
    for allocation in steps[Step.STOCK].data["allocations"]:
        parcels[allocation["center"]].append(
            ParcelItem(
                sku=allocation["sku"], batch=allocation["batch"], quantity=allocation["quantity"]
            )
        )
    outcome = shipment_book(
        order_id=order.pk,
        reference=order.number,
        pincode=order.delivery_address["pincode"],
        parcels=dict(parcels),
    )
    if not outcome.ok:
        _step_finish(
            row,
            ok=False,
            result=FailureReason.FULFILMENT_UNAVAILABLE,
            events=[(EventType.SHIPMENT_FAILED, {"reason": outcome.reason})],
        )
        order_end(order=order, to=S.CANCELLED, reason=FailureReason.FULFILMENT_UNAVAILABLE)
        return S.CANCELLED
    events = [
        (
            EventType.SHIPMENT_BOOKED,
            {"center": s.center, "partner": s.partner, "awb": s.awb},
        )
        for s in outcome.shipments
    ]
    row = _step_finish(row, ok=True, result="booked", events=events, order=order)
    if order.status != S.PROCESSING:
        # Ended (cancelled) while we were booking: make sure the booking is cancelled.
        from orders import pipeline

        pipeline.compensate(order.pk)
    return row.result


def order_confirm(order_id: uuid.UUID) -> str:
    with transaction.atomic():
        order = _CONFIRM_ORDER.get(pk=order_id)
        _guard(order)
        if order.status != S.PROCESSING:
            return order.status
        if not order.booked:
            raise StepIncomplete(f"order {order_id}: shipment not booked yet")
        committed = stock_commit(order_id=order.pk)
        _record_h1_register(order)
        order_transition(
            order=order,
            to=S.CONFIRMED,
            expected=S.PROCESSING,
            events=[(EventType.INVENTORY_COMMITTED, {})] if committed else [],
        )
    return S.CONFIRMED


def _record_h1_register(order: Order) -> None:
    if order.prescription_id is None:
        return  # H1 drugs need a prescription: without one there is nothing to record
    h1_names = {l.sku: l.name for l in order.lines.all() if l.schedule == "h1"}
    if not h1_names:
        return
    allocations = OrderStep.objects.get(order=order, step=Step.STOCK).data["allocations"]
    h1_register_record(
        order_id=order.pk,
        order_number=order.number,
        prescription_id=order.prescription_id,
        lines=[
            H1Line(
                sku=a["sku"], drug_name=h1_names[a["sku"]], batch=a["batch"], quantity=a["quantity"]
            )
            for a in allocations
            if a["sku"] in h1_names
        ],
    )


def order_end(
    *,
    order: Order,
    to: str,
    reason: str,
    expected: frozenset[str] = ENDABLE,
    data: dict[str, Any] | None = None,
) -> bool:
    """End an order that cannot go on: move it (compare-and-set), give its stock back in
    the same transaction, then void/refund and cancel bookings after commit. `data` is
    added to the status and release events (e.g. why the order ended)."""
    with transaction.atomic():
        moved = order_transition(
            order=order, to=to, expected=expected, failure_reason=reason, data=data
        )
        if not moved:
            return False
        if stock_release(order_id=order.pk):
            order_event_record(order_id=order.pk, type=EventType.INVENTORY_RELEASED, data=data)
        elif stock_restock(order_id=order.pk):
            # A confirmed order's stock left the shelf when it was committed: it goes back.
            order_event_record(
                order_id=order.pk,
                type=EventType.INVENTORY_RELEASED,
                data={**(data or {}), "restocked": True},
            )
        prescription_return(order_id=order.pk)
        from orders import pipeline

        transaction.on_commit(lambda: pipeline.compensate(order.pk))
    return True


def order_compensate(order_id: uuid.UUID) -> None:
    """Undo the outside effects of an ended order: bookings, then the payment, then any
    stock still held. Idempotent; raises on outside trouble so the caller retries. Each
    undo is tried even when an earlier one fails, so a courier that cannot be reached
    delays the cancellation of its booking, not the customer's refund."""
    order = Order.objects.get(pk=order_id)
    if order.status not in ENDED:
        return
    failures: list[ExternalError] = []
    try:
        shipment_cancel(order_id=order.pk)
    except ExternalError as exc:
        failures.append(exc)
    try:
        # The token lets payments settle a charge whose outcome is still unknown before it
        # decides between void and refund.
        # A refund is recorded on the timeline (payment.refunded) in the refund's own
        # transaction, through payments' `payment_changed` (orders/services/payment_news.py).
        payment_cancel(order_id=order.pk, token=order.payment_token)
    except ExternalError as exc:
        failures.append(exc)
    if stock_release(order_id=order.pk):
        order_event_record(order_id=order.pk, type=EventType.INVENTORY_RELEASED)
    # A charge step that claimed prescribed quantities just after the order ended (its
    # status check and its claim are not one transaction) is caught here.
    prescription_return(order_id=order.pk)
    if failures:
        raise failures[0]


def order_step_gives_up(order_id: uuid.UUID, step: str, retries: int) -> bool:
    """Whether a failing step has tried long enough. The payment steps wait a bounded time
    (`COT_PAYMENT_MAX_WAIT_SECONDS`) from their first attempt, recorded in the database as
    their step row, so "every gateway down" ends the same way however the retries were
    spaced or redelivered; other steps get `COT_STEP_MAX_RETRIES` retries."""
    if step in (Step.PAYMENT_PREPARE, Step.CHARGE):
        first = (
            OrderStep.objects.filter(order_id=order_id, step=step)
            .values_list("created_at", flat=True)
            .first()
        )
        if first is not None:
            waited = timezone.now() - first
            return waited >= timedelta(seconds=settings.COT_PAYMENT_MAX_WAIT_SECONDS)
    return retries >= settings.COT_STEP_MAX_RETRIES


def order_step_exhausted(order_id: uuid.UUID, step: str) -> None:
    """A step's retries ran out. Payment and booking trouble end the order; anything else
    (the database, say) leaves it for the sweeper to re-drive."""
    order = Order.objects.get(pk=order_id)
    if step in (Step.PAYMENT_PREPARE, Step.CHARGE):
        order_end(order=order, to=S.PAYMENT_FAILED, reason=FailureReason.PAYMENT_UNAVAILABLE)
    elif step == Step.SHIPMENT:
        order_end(order=order, to=S.CANCELLED, reason=FailureReason.FULFILMENT_UNAVAILABLE)
