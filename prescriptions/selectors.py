"""Reads of prescriptions: a client's own, and the pharmacist's review queue.

The queue needs the orders waiting on each prescription, which live in `orders`; the
domain apps never import `orders`, so `orders` hands over that query at start-up
(`waiting_orders_source_register`). Without it the queue still works, every wait then
counted from the upload."""

from __future__ import annotations

import datetime
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db.models import Min

from core.models import ApiClient
from prescriptions.enums import PrescriptionStatus
from prescriptions.models import Prescription

PENDING = PrescriptionStatus.PENDING_REVIEW


def prescription_get_for_client(
    *, client: ApiClient, prescription_id: uuid.UUID
) -> Prescription | None:
    return (
        Prescription.objects.filter(client=client, pk=prescription_id)
        .prefetch_related("items")
        .first()
    )


def prescription_decided_ids(*, prescription_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    return set(
        Prescription.objects.filter(pk__in=prescription_ids)
        .exclude(status=PrescriptionStatus.PENDING_REVIEW)
        .values_list("pk", flat=True)
    )


# --- The review queue -----------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingOrder:
    """An order on hold until its prescription is reviewed."""

    prescription_id: uuid.UUID
    number: str
    held_since: datetime.datetime


class WaitingOrdersSource(Protocol):
    def __call__(self, *, prescription_ids: Collection[uuid.UUID] | None) -> Iterable[WaitingOrder]:
        """The orders on hold for these prescriptions (None: for any prescription)."""
        ...


def _no_waiting_orders(*, prescription_ids: Collection[uuid.UUID] | None) -> Iterable[WaitingOrder]:
    return ()


_waiting_orders_source: WaitingOrdersSource = _no_waiting_orders


def waiting_orders_source_register(source: WaitingOrdersSource) -> None:
    """Tell the review queue where to find the orders on hold (`orders` does, at start-up).
    Registering again replaces the source."""
    global _waiting_orders_source
    _waiting_orders_source = source


def _waiting_orders_by_prescription(
    prescription_ids: Collection[uuid.UUID] | None = None,
) -> dict[uuid.UUID, list[WaitingOrder]]:
    waiting: dict[uuid.UUID, list[WaitingOrder]] = defaultdict(list)
    for order in _waiting_orders_source(prescription_ids=prescription_ids):
        waiting[order.prescription_id].append(order)
    for orders in waiting.values():
        orders.sort(key=lambda order: (order.held_since, order.number))
    return waiting


def review_sla() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.COT_REVIEW_SLA_SECONDS)


@dataclass(frozen=True)
class QueueEntry:
    """One pending prescription as the pharmacist's queue shows it."""

    prescription: Prescription
    waiting_orders: list[WaitingOrder]
    # When the first waiting order went on hold; the upload when no order waits.
    waiting_since: datetime.datetime
    wait: datetime.timedelta
    over_sla: bool
    # The claim is older than the SLA: another pharmacist may take it over.
    claim_stale: bool


def prescription_waiting_since(*, prescription: Prescription) -> datetime.datetime:
    """Since when the prescription's review has been awaited: the hold of its first waiting
    order, or its upload when no order waits on it."""
    orders = _waiting_orders_by_prescription([prescription.pk]).get(prescription.pk)
    return orders[0].held_since if orders else prescription.created_at


def _entry(
    prescription: Prescription, orders: list[WaitingOrder], now: datetime.datetime
) -> QueueEntry:
    since = orders[0].held_since if orders else prescription.created_at
    claimed_at = prescription.claimed_at
    return QueueEntry(
        prescription=prescription,
        waiting_orders=orders,
        waiting_since=since,
        wait=max(now - since, datetime.timedelta(0)),
        over_sla=now - since > review_sla(),
        claim_stale=claimed_at is not None and now - claimed_at > review_sla(),
    )


def prescription_review_queue(*, now: datetime.datetime) -> list[QueueEntry]:
    """Every prescription pending review, the longest wait first."""
    pending = (
        Prescription.objects.filter(status=PENDING)
        .select_related("claimed_by")
        .prefetch_related("items")
    )
    waiting = _waiting_orders_by_prescription()
    entries = [_entry(p, waiting.get(p.pk, []), now) for p in pending]
    entries.sort(key=lambda e: (e.waiting_since, e.prescription.created_at, str(e.prescription.pk)))
    return entries


def prescription_review_entry(*, prescription: Prescription, now: datetime.datetime) -> QueueEntry:
    """One prescription as the queue would show it (its review page)."""
    orders = _waiting_orders_by_prescription([prescription.pk]).get(prescription.pk, [])
    return _entry(prescription, orders, now)


@dataclass(frozen=True)
class ReviewQueueSummary:
    pending: int
    over_sla: int
    # When the longest wait began, and how long it is; None when the queue is empty.
    oldest_since: datetime.datetime | None
    oldest_wait: datetime.timedelta | None


def prescription_review_queue_summary(*, now: datetime.datetime) -> ReviewQueueSummary:
    """The queue in three numbers (the dashboard tile, the metrics), in a few queries
    whatever its length: pending prescriptions, how many are over the SLA, the oldest wait."""
    waiting = _waiting_orders_by_prescription()
    held = Prescription.objects.filter(pk__in=list(waiting), status=PENDING)
    starts = [waiting[pk][0].held_since for pk in held.values_list("pk", flat=True)]
    # Pending prescriptions no order waits on: their wait runs from the upload.
    unheld = Prescription.objects.filter(status=PENDING).exclude(pk__in=list(waiting))
    cutoff = now - review_sla()
    first_upload = unheld.aggregate(first=Min("created_at"))["first"]
    oldest_start = min([*starts, first_upload] if first_upload else starts, default=None)
    return ReviewQueueSummary(
        pending=len(starts) + unheld.count(),
        over_sla=sum(start < cutoff for start in starts)
        + unheld.filter(created_at__lt=cutoff).count(),
        oldest_since=oldest_start,
        oldest_wait=max(now - oldest_start, datetime.timedelta(0)) if oldest_start else None,
    )
