"""Taking back units that came back from an order: restocked when they can be sold again,
written off otherwise. Every take-back leaves a `StockReturn` row, once per cause and batch.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.db.models import F

from core.metrics import STOCK_WRITTEN_OFF_TOTAL
from inventory.enums import StockReturnOutcome, WriteOffReason
from inventory.models import StockBatch, StockReturn
from inventory.selectors import shelf_life_floor


class UnknownBatchError(LookupError):
    """No such batch of that product at that centre."""

    def __init__(self, *, center: str, sku: str, batch: str) -> None:
        super().__init__(f"no batch {batch!r} of {sku!r} at centre {center!r}")
        self.center, self.sku, self.batch = center, sku, batch


def _decide(
    batch: StockBatch, write_off_reason: str | None
) -> tuple[StockReturnOutcome, WriteOffReason | str]:
    """(outcome, reason) for units of `batch` coming back."""
    if write_off_reason:
        # Ops inspected the units and decided; that beats every automatic rule.
        return StockReturnOutcome.WRITTEN_OFF, WriteOffReason(write_off_reason)
    if batch.product.cold_chain:
        # Nobody can vouch for the temperature on the way back.
        return StockReturnOutcome.WRITTEN_OFF, WriteOffReason.COLD_CHAIN
    if batch.expires_on < shelf_life_floor():
        # Reservations would never pick it again: on the shelf it would only look like stock.
        return StockReturnOutcome.WRITTEN_OFF, WriteOffReason.SHORT_EXPIRY
    return StockReturnOutcome.RESTOCKED, ""


def stock_take_back(
    *,
    order_id: uuid.UUID,
    reference: str,
    center: str,
    sku: str,
    batch: str,
    quantity: int,
    write_off_reason: str | None = None,
    by: str = "",
    note: str = "",
) -> StockReturn:
    """Take back `quantity` units of one batch that left with order `order_id`.

    Written off with `write_off_reason` when one is given (ops inspected them); else
    written off `cold_chain` for a cold-chain product, `short_expiry` for a batch that no
    longer meets the shelf-life floor; else restocked: the batch's `on_hand` grows by
    `quantity`. Idempotent per (`reference`, batch): a second call returns the first
    call's record and changes nothing. Raises `UnknownBatchError` for an unknown batch,
    `ValueError` for a quantity below 1 or an unknown write-off reason.

    Locks one batch row; inside a caller's transaction the lock is held until that commits."""
    if quantity < 1:
        raise ValueError(f"quantity must be at least 1, not {quantity}")
    if write_off_reason and write_off_reason not in WriteOffReason.values:
        raise ValueError(
            f"unknown write-off reason {write_off_reason!r}; "
            f"one of {', '.join(WriteOffReason.values)}"
        )
    with transaction.atomic():
        # The batch's row lock, as every other stock write takes it: two deliveries of the
        # same take-back queue here, and the second finds the first one's record.
        stock_batch = (
            StockBatch.objects.select_for_update(of=("self",))
            .select_related("product")
            .filter(center__code=center, product__sku=sku, batch=batch)
            .first()
        )
        if stock_batch is None:
            raise UnknownBatchError(center=center, sku=sku, batch=batch)
        existing = StockReturn.objects.filter(reference=reference, batch=stock_batch).first()
        if existing is not None:
            return existing
        outcome, reason = _decide(stock_batch, write_off_reason)
        record = StockReturn.objects.create(
            batch=stock_batch,
            quantity=quantity,
            outcome=outcome,
            reason=reason,
            order_id=order_id,
            reference=reference,
            note=note,
            by=by,
        )
        if outcome == StockReturnOutcome.RESTOCKED:
            StockBatch.objects.filter(pk=stock_batch.pk).update(on_hand=F("on_hand") + quantity)
        else:
            transaction.on_commit(
                lambda: STOCK_WRITTEN_OFF_TOTAL.labels(reason=reason).inc(quantity)
            )
    return record
