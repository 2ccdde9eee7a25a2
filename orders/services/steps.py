"""The pipeline's six steps. Each takes an order id, is idempotent, and records its
outcome in the database (`OrderStep`, see step_runs), so that redelivered tasks, a
re-driving sweeper and two workers on one order all end in the same place. A business
"no" is an outcome, not an exception; exceptions mean infrastructure trouble and make the
caller retry.

Steps return outcomes; what follows one (the next step, a resume, compensation) is
started by the task layer or by a subscriber of the order's events, never from here.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import asdict
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, OuterRef

from core import metrics
from inventory.enums import Schedule
from inventory.services import LineRequest, stock_commit, stock_reserve
from logistics.services import ParcelItem, shipment_book
from orders.enums import (
    EventType,
    FailureReason,
    LineStatus,
    OnPartial,
    OrderStatus,
    Step,
    SubstitutionStatus,
)
from orders.models import Order, OrderStep, Substitution
from orders.services.ending import order_end
from orders.services.header_decision import (
    lines_failing,
    order_header_decide,
    prescription_partial_verdict,
    prescription_recheck,
    prescription_verdict,
)
from orders.services.payment_retry import order_await_payment
from orders.services.pickup import order_pickup_ready
from orders.services.step_runs import (
    ENDED_MEANWHILE,
    StepIncomplete,
    order_status_now,
    order_with_steps,
    step_begin,
    step_begin_first,
    step_finish,
    step_guard,
)
from orders.services.transitions import order_transition
from payments.enums import PaymentStatus
from payments.services import payment_charge, payment_prepare
from prescriptions.enums import CheckResult
from prescriptions.services import H1Line, h1_register_record

S = OrderStatus
# The shipment step's outcome for an in-store pickup order: no courier is booked.
PICKUP_NOTHING_BOOKED = "pickup"
# What `order_resume_after_review` returns when it moved the order back to processing:
# the rest of the pipeline (charge, shipment, confirm) is to be started.
RESUMED = "resumed"


def order_check_prescription(order_id: uuid.UUID) -> str:
    order, lines, row = step_begin_first(order_id, Step.PRESCRIPTION, lines=True)
    if row.ok is not None or order.status != S.PROCESSING:
        return row.result
    data = {}
    if order.on_partial == OnPartial.SHIP_AVAILABLE:
        # The failing lines are only named here; the chord body drops them.
        result, events, dropped = prescription_partial_verdict(order, lines)
        data = {"dropped": dropped}
    else:
        result, events = prescription_verdict(order, lines)
    ok = result in (CheckResult.OK, CheckResult.ON_HOLD)
    return step_finish(row, ok=ok, result=result, data=data, events=events).result


def order_reserve_stock(order_id: uuid.UUID) -> str:
    order, lines, row = step_begin_first(order_id, Step.STOCK, lines=True)
    if row.ok is not None or order.status != S.PROCESSING:
        return row.result
    skipped: dict[str, str] = {}
    if order.on_partial == OnPartial.SHIP_AVAILABLE:
        # Runs beside the prescription check: a line failing the Rx rules is never
        # reserved (the chord body drops whatever either step found failing).
        skipped = lines_failing(order, lines)
        lines = [line for line in lines if line.sku not in skipped]
        if not lines:
            result = next(iter(skipped.values()))
            data = {"allocations": [], "skipped": skipped}
            return step_finish(row, ok=False, result=result, data=data).result
    outcome = stock_reserve(
        order_id=order.pk,
        lines=[LineRequest(sku=l.sku, quantity=l.quantity) for l in lines],
        # An in-store pickup takes stock only from its centre.
        pincode=order.delivery_pincode,
        center=order.pickup_center,
    )
    allocations = [asdict(a) for a in outcome.allocations]
    if outcome.ok:
        event = (EventType.INVENTORY_RESERVED, {"allocations": allocations})
    else:
        event = (EventType.INVENTORY_INSUFFICIENT, {"reason": outcome.reason})
    return step_finish(
        row,
        ok=outcome.ok,
        result="reserved" if outcome.ok else str(outcome.reason),
        data={"allocations": allocations, **({"skipped": skipped} if skipped else {})},
        events=[event],
    ).result


def order_prepare_payment(order_id: uuid.UUID) -> str:
    order, _, row = step_begin_first(order_id, Step.PAYMENT_PREPARE)
    if row.ok is not None or order.status != S.PROCESSING:
        return row.result
    amount = order.total_amount
    if order.on_partial == OnPartial.SHIP_AVAILABLE:
        # What the lines passing the Rx rules cost (the chord body sets the final amount).
        lines = list(order.lines.all())
        failing = lines_failing(order, lines)
        # With every line failing the order is rejected: the amount is never charged.
        if len(failing) < len(lines):
            amount = sum((l.line_total for l in lines if l.sku not in failing), start=Decimal(0))
    payment = payment_prepare(order_id=order.pk, method=order.payment_method, amount=amount)
    event = (
        EventType.PAYMENT_PREPARED,
        {"method": payment.method, "gateway": payment.gateway, "amount": str(payment.amount)},
    )
    return step_finish(row, ok=True, result="prepared", events=[event]).result


def order_resume_after_review(order_id: uuid.UUID) -> str:
    """A pharmacist decided on the prescription an on-hold order waits for: continue to
    payment (approved: returns RESUMED) or end it (rejected). Exactly one caller moves
    the order."""
    order = Order.objects.get(pk=order_id)
    if order.status != S.ON_HOLD:
        return order.status
    result = prescription_recheck(order)
    if result == CheckResult.ON_HOLD:
        return S.ON_HOLD
    if result != CheckResult.OK:
        order_end(order=order, to=S.REJECTED, reason=result)
        return S.REJECTED
    if Substitution.objects.filter(order=order, status=SubstitutionStatus.PROPOSED).exists():
        # A substitute offered in the review waits for the client's answer, which resumes.
        return S.ON_HOLD
    # `order.resumed` tells this resume apart from the order's first `order.processing`
    # (the customer hears of it).
    resumed = [(EventType.ORDER_RESUMED, {})]
    if order_transition(order=order, to=S.PROCESSING, expected=S.ON_HOLD, events=resumed):
        return RESUMED
    return order_status_now(order)


def order_charge_payment(order_id: uuid.UUID) -> str:
    """The chord's body: decide from the three recorded outcomes, then charge."""
    order, steps = order_with_steps(order_id)
    step_guard(order)
    if order.status != S.PROCESSING:
        return order.status
    decided = order_header_decide(order, steps)
    if decided is not None:
        return decided
    row = step_begin(order, Step.CHARGE)
    if row.ok is not None:
        return row.result
    outcome = payment_charge(
        order_id=order.pk,
        token=order.payment_token,
        proceed=lambda: _lock_if_processing(order.pk),
    )
    if outcome.status == PaymentStatus.DECLINED:
        # The outcome and what it does to the order, both or neither: a run that died in
        # between would leave the order processing with its charge step finished.
        with transaction.atomic():
            step_finish(row, ok=False, result=FailureReason.PAYMENT_DECLINED)
            # With its client's payment retry window open, the order waits for another
            # payment method instead of failing.
            if order_await_payment(order=order, decline_code=outcome.decline_code):
                return order_status_now(order)
            order_end(order=order, to=S.PAYMENT_FAILED, reason=FailureReason.PAYMENT_DECLINED)
        return S.PAYMENT_FAILED
    if outcome.status not in (PaymentStatus.CAPTURED, PaymentStatus.PENDING_COLLECTION):
        # Not charged: the order was ended before its charge could start (expiry, a
        # cancellation), or its payment was voided or refunded under a running order.
        # Either way this order cannot be paid: end it unless someone already did.
        step_finish(row, ok=False, result=FailureReason.PAYMENT_UNAVAILABLE)
        order_end(order=order, to=S.PAYMENT_FAILED, reason=FailureReason.PAYMENT_UNAVAILABLE)
        return order_status_now(order)
    events = []
    if outcome.status == PaymentStatus.CAPTURED:
        events.append((EventType.PAYMENT_CAPTURED, {"amount": str(order.total_amount)}))
    row = step_finish(row, ok=True, result=outcome.status, events=events)
    if outcome.status == PaymentStatus.CAPTURED:
        transaction.on_commit(lambda: metrics.REVENUE_TOTAL.inc(float(order.total_amount)))
    if order_status_now(order) != S.PROCESSING:
        # Ended (cancelled) while we were charging: the money must go back.
        return ENDED_MEANWHILE
    return row.result


def _lock_if_processing(order_id: uuid.UUID) -> bool:
    """Lock the order's row and say whether it may still be charged (see the expiry job,
    which takes the same lock before it labels an order by its charge)."""
    locked = Order.objects.select_for_update().filter(pk=order_id, status=S.PROCESSING)
    return bool(list(locked.values_list("pk", flat=True)))


def order_book_shipment(order_id: uuid.UUID) -> str:
    order, steps = order_with_steps(order_id)
    step_guard(order)
    if order.status != S.PROCESSING:
        return order.status
    if Step.CHARGE not in steps or not steps[Step.CHARGE].ok:
        raise StepIncomplete(f"order {order_id}: not charged yet")
    row = step_begin(order, Step.SHIPMENT)
    if row.ok is not None:
        return row.result
    if order.is_pickup:
        # The customer comes to the centre: nothing to book.
        return step_finish(row, ok=True, result=PICKUP_NOTHING_BOOKED).result
    # Prescription drugs are handed over only against the customer's delivery OTP.
    otp_skus = set(
        order.lines.filter(schedule__in=(Schedule.H, Schedule.H1)).values_list("sku", flat=True)
    )
    parcels: dict[str, list[ParcelItem]] = defaultdict(list)
    for allocation in steps[Step.STOCK].data["allocations"]:
        parcels[allocation["center"]].append(
            ParcelItem(
                sku=allocation["sku"],
                batch=allocation["batch"],
                quantity=allocation["quantity"],
                otp_required=allocation["sku"] in otp_skus,
            )
        )
    outcome = shipment_book(
        order_id=order.pk,
        reference=order.number,
        pincode=order.delivery_pincode,
        parcels=dict(parcels),
    )
    if not outcome.ok:
        step_finish(
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
    row = step_finish(row, ok=True, result="booked", events=events)
    if order_status_now(order) != S.PROCESSING:
        # Ended (cancelled) while we were booking: the booking must be cancelled.
        return ENDED_MEANWHILE
    return row.result


def order_confirm(order_id: uuid.UUID) -> str:
    with transaction.atomic():
        order = (
            Order.objects.select_for_update()
            .annotate(
                booked=Exists(
                    OrderStep.objects.filter(order=OuterRef("pk"), step=Step.SHIPMENT, ok=True)
                )
            )
            .get(pk=order_id)
        )
        step_guard(order)
        if order.status != S.PROCESSING:
            return order.status
        if not order.booked:
            raise StepIncomplete(f"order {order_id}: shipment not booked yet")
        committed = stock_commit(order_id=order.pk)
        _record_h1_register(order)
        events = [(EventType.INVENTORY_COMMITTED, {})] if committed else []
        if order.is_pickup:
            # Set aside at the centre, waiting for the customer's code.
            order_pickup_ready(order=order, events=events)
            return S.READY_FOR_PICKUP
        order_transition(order=order, to=S.CONFIRMED, expected=S.PROCESSING, events=events)
    return S.CONFIRMED


def _record_h1_register(order: Order) -> None:
    if order.prescription_id is None:
        return  # H1 drugs need a prescription: without one there is nothing to record
    h1_names = {
        l.sku: l.name
        for l in order.lines.filter(status=LineStatus.ACTIVE)
        if l.schedule == Schedule.H1
    }
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
