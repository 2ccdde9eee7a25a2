"""Stock reservation: FEFO from batches with enough shelf life, from the highest-priority
centre that serves the pincode and can serve the whole order, else split across the
fewest serving centres.

Concurrency: every write locks the batches it touches in primary-key order inside one
transaction (`select_for_update()` when reserving, the UPDATEs themselves when settling),
so two orders for the last units queue instead of both taking them (and never deadlock);
the CHECK constraints are the last line.
"""

from __future__ import annotations

import datetime
import itertools
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from inventory.enums import ReservationStatus
from inventory.models import FulfillmentCenter, Reservation, ReservationItem, StockBatch
from inventory.selectors import centers_for, shelf_life_floor

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


Plan = list[tuple[StockBatch, int]]
# Centre combinations tried for a split grow as 2^n; past this many centres serving one
# pincode (with stock of the order's SKUs) we stop looking for the fewest and take the
# first that fits in priority order.
_MAX_SPLIT_SEARCH = 10


def _fefo(batches: list[StockBatch], sku: str) -> list[StockBatch]:
    return sorted((b for b in batches if b.product.sku == sku), key=lambda b: (b.expires_on, b.pk))


def _take(batches: list[StockBatch], needed: int, plan: Plan) -> int:
    """Take up to `needed` units from `batches` in order; returns what is still missing."""
    for batch in batches:
        if needed == 0:
            break
        take = min(needed, batch.available)
        if take > 0:
            plan.append((batch, take))
            needed -= take
    return needed


def _plan_for_centers(
    centers: list[FulfillmentCenter], batches: list[StockBatch], lines: list[LineRequest]
) -> Plan | None:
    """A FEFO plan serving every line from these centres only, or None.

    A line comes whole from the highest-priority centre of the set that can serve it; only
    a line that no single centre can serve is spread over the set, in priority order."""
    by_center = {c.pk: [b for b in batches if b.center_id == c.pk] for c in centers}
    plan: Plan = []
    for line in lines:
        per_center = [_fefo(by_center[c.pk], line.sku) for c in centers]
        whole = next(
            (fefo for fefo in per_center if sum(b.available for b in fefo) >= line.quantity),
            None,
        )
        if whole is not None:
            _take(whole, line.quantity, plan)
            continue
        needed = line.quantity
        for fefo in per_center:
            needed = _take(fefo, needed, plan)
        if needed:
            return None
    return plan


def _plan(
    centers: list[FulfillmentCenter], batches: list[StockBatch], lines: list[LineRequest]
) -> Plan | None:
    """One centre if any can serve everything (highest priority first); otherwise the
    fewest centres (one shipment each), ties going to the higher-priority set."""
    stocked = [c for c in centers if any(b.center_id == c.pk for b in batches)]
    for center in stocked:
        plan = _plan_for_centers([center], batches, lines)
        if plan is not None:
            return plan
    if len(stocked) > _MAX_SPLIT_SEARCH:
        return _plan_for_centers(stocked, batches, lines)
    for size in range(2, len(stocked) + 1):
        # combinations() keeps the input order, so sets come in priority order.
        for subset in itertools.combinations(stocked, size):
            plan = _plan_for_centers(list(subset), batches, lines)
            if plan is not None:
                return plan
    return None


def _sellable_batches_locked(
    centers: list[FulfillmentCenter], skus: Iterable[str], floor: datetime.date
) -> list[StockBatch]:
    """The batches of these active products with free units past the shelf-life floor at
    these centres, row-locked in primary-key order (how every stock write takes them)."""
    return list(
        StockBatch.objects.select_for_update(of=("self",))
        .select_related("product")
        .filter(
            center__in=centers,
            product__sku__in=list(skus),
            product__active=True,
            expires_on__gte=floor,
            on_hand__gt=F("reserved"),
        )
        .order_by("pk")
    )


def stock_reserve(
    *,
    order_id: uuid.UUID,
    lines: list[LineRequest],
    pincode: str = "",
    center: str = "",
    today: datetime.date | None = None,
) -> ReserveOutcome:
    """Reserve every line at the highest-priority centre that serves the pincode and can
    serve the whole order, else split over the fewest serving centres. With `center` (an
    in-store pickup), at that centre only: short there, or the centre inactive, is
    out_of_stock. Idempotent: a second call returns the first call's outcome."""
    # One line per SKU, so a plan never counts a batch's free units twice.
    merged: dict[str, int] = {}
    for line in lines:
        merged[line.sku] = merged.get(line.sku, 0) + line.quantity
    lines = [LineRequest(sku=sku, quantity=quantity) for sku, quantity in merged.items()]
    centers = centers_for(pincode=pincode, center=center)
    if not centers and not center:
        existing = _existing_outcome(order_id)
        return existing or ReserveOutcome(ok=False, reason=UNSERVICEABLE_PINCODE)
    floor = shelf_life_floor(today=today)
    try:
        with transaction.atomic():
            # Written first: a second call for this order stops here (order_id is unique)
            # and returns the first one's outcome, without planning against stock that the
            # first one holds. Rolled back when there is no plan.
            reservation = Reservation.objects.create(order_id=order_id)
            batches = _sellable_batches_locked(centers, merged, floor)
            plan = _plan(centers, batches, lines)
            if plan is None:
                transaction.set_rollback(True)
                return ReserveOutcome(ok=False, reason=OUT_OF_STOCK)
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
    codes = {center.pk: center.code for center in centers}
    return ReserveOutcome(
        ok=True,
        allocations=tuple(
            Allocation(
                center=codes[batch.center_id],
                sku=batch.product.sku,
                batch=batch.batch,
                quantity=quantity,
            )
            for batch, quantity in plan
        ),
    )


def _settle(
    order_id: uuid.UUID,
    *,
    from_status: ReservationStatus,
    to: ReservationStatus,
    batch_change: Callable[[int], dict[str, Any]],
) -> bool:
    """Move a reservation from `from_status` to `to` once, changing each of its batches by
    `batch_change(quantity)`. False when it was not in `from_status` (idempotent)."""
    # No savepoint inside a caller's transaction: nothing here is retried after an error.
    with transaction.atomic(savepoint=False):
        # Compare-and-set: the UPDATE locks the reservation, so of two concurrent calls one
        # moves it and the other finds it moved.
        moved = Reservation.objects.filter(order_id=order_id, status=from_status).update(
            status=to, updated_at=timezone.now()
        )
        if not moved:
            return False
        items = ReservationItem.objects.filter(reservation__order_id=order_id).order_by("batch_id")
        # One UPDATE per batch in primary-key order: each locks its batch, so the locks are
        # taken in the order every other stock write takes them.
        for batch_id, quantity in items.values_list("batch_id", "quantity"):
            StockBatch.objects.filter(pk=batch_id).update(**batch_change(quantity))
    return True


def stock_release(*, order_id: uuid.UUID) -> bool:
    """Give held stock back. Returns False when there was nothing held (idempotent)."""
    return _settle(
        order_id,
        from_status=ReservationStatus.HELD,
        to=ReservationStatus.RELEASED,
        batch_change=lambda quantity: {"reserved": F("reserved") - quantity},
    )


def stock_commit(*, order_id: uuid.UUID) -> bool:
    """Held stock leaves the shelf: on_hand and reserved both drop. Idempotent."""
    return _settle(
        order_id,
        from_status=ReservationStatus.HELD,
        to=ReservationStatus.COMMITTED,
        batch_change=lambda quantity: {
            "reserved": F("reserved") - quantity,
            "on_hand": F("on_hand") - quantity,
        },
    )


def stock_restock(*, order_id: uuid.UUID) -> bool:
    """Put committed stock back on the shelf (an order cancelled after it was confirmed,
    before it shipped): `on_hand` grows by what the commit took, in the same batches. The
    reservation ends `released`, as if it had never been committed, so this happens once.
    Returns False when nothing was committed (idempotent)."""
    return _settle(
        order_id,
        from_status=ReservationStatus.COMMITTED,
        to=ReservationStatus.RELEASED,
        batch_change=lambda quantity: {"on_hand": F("on_hand") + quantity},
    )


class UnitsNotCommitted(Exception):
    """The order's committed stock holds fewer units of the sku than asked to give back."""


def stock_release_units(*, order_id: uuid.UUID, sku: str, quantity: int) -> list[Allocation]:
    """Put `quantity` committed units of `sku` of the order back on the shelf (lines
    cancelled before pickup): `on_hand` grows in the batches they came from, the
    latest-expiring batch first (the customer keeps the units that must go soonest), and
    the reservation keeps only what still leaves with the order, so a later whole-order
    restock gives back the rest and nothing twice. Returns which batches got how many.

    Raises `UnitsNotCommitted` (changing nothing) when the order's committed reservation
    holds fewer units of the sku."""
    if quantity <= 0:
        raise ValueError(f"units to release must be positive: {quantity}")
    with transaction.atomic():
        # The reservation row first, as `_settle` takes it: a concurrent restock of the
        # whole order waits for this one and then reads the items as this one left them.
        reservation = (
            Reservation.objects.select_for_update()
            .filter(order_id=order_id, status=ReservationStatus.COMMITTED)
            .first()
        )
        if reservation is None:
            raise UnitsNotCommitted(f"order {order_id} has no committed stock")
        items = list(
            reservation.items.select_related("batch__center", "batch__product")
            .filter(batch__product__sku=sku)
            .order_by("-batch__expires_on", "-batch_id")
        )
        held = sum(item.quantity for item in items)
        if held < quantity:
            raise UnitsNotCommitted(
                f"order {order_id} holds {held} committed units of {sku}, not {quantity}"
            )
        taken: list[tuple[ReservationItem, int]] = []
        needed = quantity
        for item in items:
            if needed == 0:
                break
            take = min(needed, item.quantity)
            taken.append((item, take))
            needed -= take
        # One UPDATE per batch in primary-key order, like every other stock write.
        for item, take in sorted(taken, key=lambda pair: pair[0].batch_id):
            StockBatch.objects.filter(pk=item.batch_id).update(on_hand=F("on_hand") + take)
            if take == item.quantity:
                item.delete()  # a reservation item of 0 units would break its CHECK
            else:
                ReservationItem.objects.filter(pk=item.pk).update(quantity=F("quantity") - take)
    return [
        Allocation(center=item.batch.center.code, sku=sku, batch=item.batch.batch, quantity=take)
        for item, take in taken
    ]


def stock_release_held_sku(*, order_id: uuid.UUID, sku: str) -> list[Allocation]:
    """Give back every held unit of `sku` in the order's reservation (a line dropped
    before the charge), keeping the rest held: `reserved` drops in each batch and the
    sku's reservation items go, so a later commit or release of the order never counts
    them. Returns what was given back; nothing when the reservation is not held or has
    no unit of the sku (idempotent)."""
    with transaction.atomic():
        # The reservation row first, as `_settle` takes it: a concurrent commit or release
        # of the whole order waits and then reads the items as this one left them.
        reservation = (
            Reservation.objects.select_for_update()
            .filter(order_id=order_id, status=ReservationStatus.HELD)
            .first()
        )
        if reservation is None:
            return []
        items = list(
            reservation.items.select_related("batch__center")
            .filter(batch__product__sku=sku)
            .order_by("batch_id")
        )
        # One UPDATE per batch in primary-key order, like every other stock write.
        for item in items:
            StockBatch.objects.filter(pk=item.batch_id).update(
                reserved=F("reserved") - item.quantity
            )
        ReservationItem.objects.filter(pk__in=[item.pk for item in items]).delete()
    return [
        Allocation(
            center=item.batch.center.code, sku=sku, batch=item.batch.batch, quantity=item.quantity
        )
        for item in items
    ]


def stock_swap_held_sku(
    *,
    order_id: uuid.UUID,
    sku: str,
    substitute_sku: str,
    quantity: int,
    pincode: str = "",
    center: str = "",
    today: datetime.date | None = None,
) -> ReserveOutcome:
    """Hold `quantity` units of `substitute_sku` for the order instead of its held units
    of `sku` (a substitute the customer accepted), in one transaction: FEFO from the
    highest-priority serving centre that has them all, else split like any reservation
    (with `center`, an in-store pickup's, from that centre only).
    Returns the reservation's allocations after the swap; not ok (changing nothing) when
    the reservation is not held or the substitute cannot be reserved any more.
    Idempotent: once the swap happened (no unit of `sku`, some of `substitute_sku`), a
    second call returns the same allocations."""
    centers = centers_for(pincode=pincode, center=center)
    floor = shelf_life_floor(today=today)
    with transaction.atomic():
        # The reservation row first, as `_settle` takes it.
        reservation = (
            Reservation.objects.select_for_update()
            .filter(order_id=order_id, status=ReservationStatus.HELD)
            .first()
        )
        if reservation is None:
            return ReserveOutcome(ok=False, reason="released")
        held = reservation.items.filter(batch__product__sku__in=(sku, substitute_sku))
        held_skus = set(held.values_list("batch__product__sku", flat=True))
        if substitute_sku in held_skus and sku not in held_skus:
            return ReserveOutcome(ok=True, allocations=_allocations_of(reservation))
        batches = _sellable_batches_locked(centers, [substitute_sku], floor)
        plan = _plan(centers, batches, [LineRequest(sku=substitute_sku, quantity=quantity)])
        if plan is None:
            return ReserveOutcome(ok=False, reason=OUT_OF_STOCK)
        stock_release_held_sku(order_id=order_id, sku=sku)
        ReservationItem.objects.bulk_create(
            ReservationItem(reservation=reservation, batch=batch, quantity=taken)
            for batch, taken in plan
        )
        for batch, taken in sorted(plan, key=lambda item: item[0].pk):
            StockBatch.objects.filter(pk=batch.pk).update(reserved=F("reserved") + taken)
        return ReserveOutcome(ok=True, allocations=_allocations_of(reservation))
