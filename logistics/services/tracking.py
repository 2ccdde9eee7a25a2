"""Partner tracking news (the logistics webhook), applied to our shipments once, whatever
order and however often it arrives: a shipment only ever moves forward (`progress`).

Delivery attempts: the courier goes out for delivery, may fail, and goes out again, as
often as it decides (`COT_DELIVERY_ATTEMPTS` is what we expect it to allow; it decides
when to return the parcel, we only follow). Each update may say which attempt it is about;
one that does not is about the current attempt: the next one (failed so far + 1), except
that a failure reported while the shipment stands failed is that same failure again (a
replay: without an attempt number, a replay and a second failure look alike, and counting
a replay as a failure would be worse than missing one the next update reveals anyway).

Proof of delivery: a shipment with a `delivery_otp` is delivered only on the courier's word
that it checked the customer's OTP (`otp_verified`); without it the update is refused
(OTP_REQUIRED) and nothing changes. Ops moving it by hand attest the check themselves."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core import metrics
from logistics.enums import (
    ATTEMPT_STATUSES,
    FINAL,
    STATUS_ALIASES,
    ShipmentStatus,
    progress,
)
from logistics.models import Shipment, ShipmentUpdate
from logistics.selectors import shipment_tracking_url
from logistics.signals import shipment_changed

APPLIED = "applied"
ALREADY_APPLIED = "already_applied"  # a replay: the shipment is there already
STALE = "stale"  # older than what we know (out of order): nothing moves backwards
IGNORED = "ignored"  # the shipment was cancelled: the partner's news no longer matters
UNKNOWN_REFERENCE = "unknown_reference"
# Delivered, says the courier, but not that the customer's OTP was checked: refused.
OTP_REQUIRED = "otp_required"

logger = logging.getLogger(__name__)

S = ShipmentStatus


def _current_attempt(shipment: Shipment) -> int:
    """The attempt the shipment's status is about: the one that failed while it stands
    failed, else the one under way or next."""
    if shipment.status == S.DELIVERY_FAILED:
        return shipment.delivery_attempts
    return shipment.delivery_attempts + 1


def _attempt_of(shipment: Shipment, status: str, attempt: int | None) -> int:
    if attempt is not None:
        return attempt
    if status == S.DELIVERY_FAILED and shipment.status == S.DELIVERY_FAILED:
        return shipment.delivery_attempts
    return shipment.delivery_attempts + 1


def _news(shipment: Shipment, status: str, attempt: int) -> str | None:
    """STALE or ALREADY_APPLIED when the update would not move the shipment; None when
    it does."""
    here = shipment.status
    if here == status and (status not in ATTEMPT_STATUSES or status == S.DELIVERED):
        return ALREADY_APPLIED
    if here in FINAL:
        return STALE
    ours = progress(here, _current_attempt(shipment))
    theirs = progress(status, attempt)
    if theirs == ours:
        return ALREADY_APPLIED
    return STALE if theirs < ours else None


def shipment_tracking_apply(
    *,
    awb: str,
    status: str,
    at: datetime,
    attempt: int | None = None,
    reason: str | None = None,
    otp_verified: bool = False,
    by: str = "",
    note: str = "",
) -> str:
    """Apply one tracking update; returns one of APPLIED, ALREADY_APPLIED, STALE, IGNORED,
    UNKNOWN_REFERENCE, OTP_REQUIRED. An applied update is kept (`ShipmentUpdate`) and goes
    out through `shipment_changed` in the same transaction. `otp_verified` is the courier's
    word (or ops') that the customer's delivery OTP was checked: a `delivered` for a
    shipment that has one is refused without it (a replay of the delivery is still
    ALREADY_APPLIED). `by` and `note` say who moved it by hand and why (ops in admin), as
    if the courier had said it."""
    status = STATUS_ALIASES.get(status, status)
    with transaction.atomic():
        shipment = (
            Shipment.objects.select_for_update().filter(awb=awb).order_by("-created_at").first()
        )
        if shipment is None:
            return UNKNOWN_REFERENCE
        if shipment.status == S.CANCELLED:
            return IGNORED
        number = _attempt_of(shipment, status, attempt) if status in ATTEMPT_STATUSES else None
        refused = _news(shipment, status, number or 0)
        if refused is not None:
            return refused
        if status == S.DELIVERED and shipment.delivery_otp and not otp_verified:
            logger.warning(
                "delivery of %s refused: the courier did not confirm the customer's OTP", awb
            )
            return OTP_REQUIRED
        changes: dict[str, object] = {"status": status, "status_at": at}
        if status == S.DELIVERY_FAILED:
            # A failure of attempt n means n failed so far (any we missed failed too).
            changes["delivery_attempts"] = max(shipment.delivery_attempts, number or 0)
            changes["last_failure_reason"] = reason or ""
        elif number is not None:
            # Out for (or delivered on) attempt n: the n - 1 before it failed.
            changes["delivery_attempts"] = max(shipment.delivery_attempts, number - 1)
        Shipment.objects.filter(pk=shipment.pk).update(**changes, updated_at=timezone.now())
        ShipmentUpdate.objects.create(
            shipment=shipment, status=status, at=at, attempt=number, reason=reason or ""
        )
        shipment_changed.send(
            sender=Shipment,
            order_id=shipment.order_id,
            status=status,
            data={
                "awb": shipment.awb,
                "center": shipment.center,
                "partner": shipment.partner,
                "at": at.isoformat().replace("+00:00", "Z"),
                "attempt": number,
                "reason": reason or None,
                "tracking_url": shipment_tracking_url(shipment),
                **({"by": by, "note": note} if by else {}),
            },
        )
        _count(shipment.partner, status, reason)
    return APPLIED


def _count(partner: str, status: str, reason: str | None) -> None:
    """Counted once the update is committed (a rolled-back one never happened)."""

    def count() -> None:
        metrics.SHIPMENTS_TOTAL.labels(partner=partner, status=status).inc()
        if status == S.DELIVERY_FAILED:
            metrics.DELIVERY_FAILURES_TOTAL.labels(
                partner=partner, reason=reason or metrics.UNSPECIFIED
            ).inc()

    transaction.on_commit(count)
