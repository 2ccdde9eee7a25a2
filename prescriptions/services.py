"""The Rx rules the pipeline applies (CONTRACT.md §2, "Prescriptions")."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.conf import settings

from prescriptions.enums import CheckResult, PrescriptionStatus
from prescriptions.models import Prescription

# Drug schedules as the catalog names them (Drugs and Cosmetics Rules): H and H1 need a
# prescription, X is never sold online.
PRESCRIPTION_SCHEDULES = frozenset({"h", "h1"})
NOT_SOLD_ONLINE_SCHEDULES = frozenset({"x"})


@dataclass(frozen=True)
class RxLine:
    sku: str
    quantity: int
    schedule: str


def prescription_check(
    *,
    customer_id: str,
    prescription_id: uuid.UUID | None,
    lines: list[RxLine],
    ordered_on: datetime.date,
) -> CheckResult:
    """Decide whether these lines may be sold under this prescription. Pure read."""
    if any(line.schedule in NOT_SOLD_ONLINE_SCHEDULES for line in lines):
        return CheckResult.NOT_SELLABLE_ONLINE
    rx_lines = [line for line in lines if line.schedule in PRESCRIPTION_SCHEDULES]
    if not rx_lines:
        return CheckResult.OK
    if prescription_id is None:
        return CheckResult.PRESCRIPTION_REQUIRED
    prescription = Prescription.objects.prefetch_related("items").filter(pk=prescription_id).first()
    if prescription is None or prescription.customer_id != customer_id:
        return CheckResult.PRESCRIPTION_INVALID
    if prescription.status == PrescriptionStatus.REJECTED:
        return CheckResult.PRESCRIPTION_REJECTED
    validity = datetime.timedelta(days=settings.COT_PRESCRIPTION_VALIDITY_DAYS)
    if prescription.issued_on > ordered_on:
        return CheckResult.PRESCRIPTION_INVALID
    if prescription.issued_on < ordered_on - validity:
        return CheckResult.PRESCRIPTION_EXPIRED
    remaining = {item.sku: item.remaining for item in prescription.items.all()}
    for line in rx_lines:
        if line.sku not in remaining:
            return CheckResult.PRESCRIPTION_INVALID
        if remaining[line.sku] < line.quantity:
            return CheckResult.PRESCRIPTION_QUANTITY_EXCEEDED
    if prescription.status == PrescriptionStatus.PENDING_REVIEW:
        return CheckResult.ON_HOLD
    return CheckResult.OK
