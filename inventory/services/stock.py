"""Stock reservation: FEFO from batches with enough shelf life, one centre per order.

Concurrency: every write locks the batches it touches with `select_for_update()` in
primary-key order inside one transaction, so two orders for the last units queue instead
of both taking them (and never deadlock); the CHECK constraints are the last line.
"""

from __future__ import annotations

import datetime
import uuid
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from inventory.enums import ReservationStatus
from inventory.models import FulfillmentCenter, Reservation, ReservationItem, StockBatch

UNSERVICEABLE_PINCODE = "unserviceable_pincode"
OUT_OF_STOCK = "out_of_stock"


@dataclass(frozen=True)
class LineRequest:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Allocation:
    center: str
    sku: str
    batch: str
    quantity: int


@dataclass(frozen=True)
class ReserveOutcome:
    ok: bool
    reason: str | None = None
    allocations: tuple[Allocation, ...] = ()


def _allocations_of(reservation: Reservation) -> tuple[Allocation, ...]:
    items = reservation.items.select_related("batch__center", "batch__product").order_by("pk")
    return tuple(
        Allocation(
            center=item.batch.center.code,
            sku=item.batch.product.sku,
            batch=item.batch.batch,
            quantity=item.quantity,
        )
        for item in items
    )


def _existing_outcome(order_id: uuid.UUID) -> ReserveOutcome | None:
    reservation = Reservation.objects.filter(order_id=order_id).first()
    if reservation is None:
        return None
    if reservation.status == ReservationStatus.RELEASED:
        return ReserveOutcome(ok=False, reason="released")
    return ReserveOutcome(ok=True, allocations=_allocations_of(reservation))


def _plan_for_center(
    batches: list[StockBatch], lines: list[LineRequest]
) -> list[tuple[StockBatch, int]] | None:
    """FEFO plan serving every line from these batches (one centre), or None."""
    by_sku: dict[str, list[StockBatch]] = defaultdict(list)
    for batch in sorted(batches, key=lambda b: (b.expires_on, b.pk)):
        by_sku[batch.product.sku].append(batch)
    plan: list[tuple[StockBatch, int]] = []
    for line in lines:
        needed = line.quantity
        for batch in by_sku.get(line.sku, []):
            take = min(needed, batch.available)
            if take > 0:
                plan.append((batch, take))
                needed -= take
            if needed == 0:
                break
        if needed:
            return None
    return plan


def stock_reserve(
    *,
    order_id: uuid.UUID,
    lines: list[LineRequest],
    pincode: str,
    today: datetime.date | None = None,
) -> ReserveOutcome:
    """Reserve every line at the highest-priority centre that serves the pincode and can
    serve the whole order. Idempotent: a second call returns the first call's outcome."""
    existing = _existing_outcome(order_id)
    if existing is not None:
        return existing
    centers = [c for c in FulfillmentCenter.objects.filter(active=True) if c.serves(pincode)]
    if not centers:
        return ReserveOutcome(ok=False, reason=UNSERVICEABLE_PINCODE)
    floor = (today or timezone.localdate()) + datetime.timedelta(
        days=settings.COT_SHELF_LIFE_FLOOR_DAYS
    )
    try:
        with transaction.atomic():
            batches = list(
                StockBatch.objects.select_for_update(of=("self",))
                .select_related("product")
                .filter(
                    center__in=centers,
                    product__sku__in={line.sku for line in lines},
                    product__active=True,
                    expires_on__gte=floor,
                    on_hand__gt=F("reserved"),
                )
                .order_by("pk")
            )
            for center in centers:
                plan = _plan_for_center([b for b in batches if b.center_id == center.pk], lines)
                if plan is not None:
                    break
            else:
                return ReserveOutcome(ok=False, reason=OUT_OF_STOCK)
            reservation = Reservation.objects.create(order_id=order_id)
            ReservationItem.objects.bulk_create(
                ReservationItem(reservation=reservation, batch=batch, quantity=quantity)
                for batch, quantity in plan
            )
            for batch, quantity in sorted(plan, key=lambda item: item[0].pk):
                StockBatch.objects.filter(pk=batch.pk).update(reserved=F("reserved") + quantity)
    except IntegrityError:
        # Another delivery of this step reserved for the same order first.
        existing = _existing_outcome(order_id)
        if existing is None:
            raise
        return existing
    return ReserveOutcome(
        ok=True,
        allocations=tuple(
            Allocation(
                center=center.code, sku=batch.product.sku, batch=batch.batch, quantity=quantity
            )
            for batch, quantity in plan
        ),
    )


def _settle(order_id: uuid.UUID, *, to: ReservationStatus) -> bool:
    """Move a held reservation to committed or released, adjusting its batches."""
    with transaction.atomic():
        reservation = Reservation.objects.select_for_update().filter(order_id=order_id).first()
        if reservation is None or reservation.status != ReservationStatus.HELD:
            return False
        items = list(reservation.items.order_by("batch_id"))
        # Lock the batches in primary-key order, as every other stock write does.
        list(
            StockBatch.objects.select_for_update()
            .filter(pk__in=[item.batch_id for item in items])
            .order_by("pk")
        )
        for item in items:
            change = {"reserved": F("reserved") - item.quantity}
            if to == ReservationStatus.COMMITTED:
                change["on_hand"] = F("on_hand") - item.quantity
            StockBatch.objects.filter(pk=item.batch_id).update(**change)
        reservation.status = to
        reservation.save(update_fields=["status", "updated_at"])
    return True


def stock_release(*, order_id: uuid.UUID) -> bool:
    """Give held stock back. Returns False when there was nothing held (idempotent)."""
    return _settle(order_id, to=ReservationStatus.RELEASED)


def stock_commit(*, order_id: uuid.UUID) -> bool:
    """Held stock leaves the shelf: on_hand and reserved both drop. Idempotent."""
    return _settle(order_id, to=ReservationStatus.COMMITTED)
