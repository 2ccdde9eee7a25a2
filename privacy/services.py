"""Writes: the retention job's redactions, and a customer's export and erasure.

Each record (an order with every copy of its data, a prescription, an order's H1 register
rows) is redacted in one transaction with its `Redaction` row, under a lock on the
record, so a run stopped halfway leaves every record whole or untouched, and two runs (the
daily job and a command, an erasure) never redact one twice.
"""

from __future__ import annotations

import datetime
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.models import ApiClient
from orders.models import Order
from prescriptions.models import Prescription
from privacy import selectors
from privacy.enums import RedactionCause, RedactionKind, RequestKind
from privacy.metrics import redactions_count
from privacy.models import PrivacyRequest, Redaction
from privacy.shredders import SHREDDERS, Kept, PrescriptionShredder, Subject, kept, shred

EXPORT_SCHEMA = "cot.customer_export"
EXPORT_SCHEMA_VERSION = 1


class CustomerInProgress(Exception):
    """The customer has an order still in progress (or a return still open): its data is
    still needed to finish it. Nothing was redacted."""

    def __init__(self, numbers: list[str]) -> None:
        super().__init__(
            "orders still in progress (not in a final status, or a return open): "
            + ", ".join(numbers)
            + ". Erase once they have ended."
        )
        self.numbers = numbers


@dataclass
class RetentionRun:
    """What one run of the retention job found due and (unless a dry run) redacted."""

    dry_run: bool
    orders: list[uuid.UUID] = field(default_factory=list)
    prescriptions: list[uuid.UUID] = field(default_factory=list)
    registers: list[uuid.UUID] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    # Stopped at its time budget or limit with records still due.
    more: bool = False

    def add(self, rows: dict[str, int]) -> None:
        for store, count in rows.items():
            self.rows[store] = self.rows.get(store, 0) + count


def _lock(kind: str, subject_id: uuid.UUID) -> bool:
    """Lock the record's row for this transaction; False when it is gone."""
    model = Prescription if kind == RedactionKind.PRESCRIPTION else Order
    return bool(list(model.objects.select_for_update().filter(pk=subject_id).values_list("pk")))


def _redact_record(
    *, kind: str, subject_id: uuid.UUID, now: datetime.datetime
) -> dict[str, int] | None:
    """Redact one record as the retention job does. None when there was nothing to do:
    redacted by someone else meanwhile (or, for register rows, none changed)."""
    subject = (
        Subject(prescription_ids=frozenset({subject_id}))
        if kind == RedactionKind.PRESCRIPTION
        else Subject(order_ids=frozenset({subject_id}))
    )
    with transaction.atomic():
        if not _lock(kind, subject_id):
            return None
        done = Redaction.objects.filter(kind=kind, subject_id=subject_id)
        if kind != RedactionKind.REGISTER and done.exists():
            return None
        rows = shred(subject, now=now)
        if kind == RedactionKind.REGISTER and not rows:
            return None
        Redaction.objects.create(
            kind=kind,
            subject_id=subject_id,
            cause=RedactionCause.RETENTION,
            redacted_at=now,
            rows=rows,
        )
        transaction.on_commit(lambda: redactions_count(kind=kind, cause=RedactionCause.RETENTION))
    return rows


def pii_redact_expired(
    *,
    now: datetime.datetime | None = None,
    dry_run: bool = False,
    limit: int | None = None,
    seconds: float | None = None,
) -> RetentionRun:
    """Redact what the retention rules let go: orders ended more than
    COT_PII_RETENTION_DAYS ago (every copy of their personal data), prescriptions past
    their keep period, and H1 register rows past theirs. `limit` records of each kind at
    most, and no new record after `seconds`; `more` says whether some are left.
    `dry_run`: only find them."""
    now = now or timezone.now()
    deadline = time.monotonic() + seconds if seconds is not None else None
    run = RetentionRun(dry_run=dry_run)
    due = (
        (RedactionKind.ORDER, selectors.orders_past_retention, run.orders),
        (RedactionKind.PRESCRIPTION, selectors.prescriptions_past_keep, run.prescriptions),
        # After the orders: an order redacted in this run may have register rows due.
        (RedactionKind.REGISTER, selectors.register_orders_past_keep, run.registers),
    )
    for kind, find, done in due:
        found = find(now=now, limit=limit)
        run.more |= limit is not None and len(found) == limit
        for subject_id in found:
            if deadline is not None and time.monotonic() > deadline:
                run.more = True
                return run
            if dry_run:
                done.append(subject_id)
                continue
            rows = _redact_record(kind=kind, subject_id=subject_id, now=now)
            if rows is not None:
                done.append(subject_id)
                run.add(rows)
    return run


def customer_export(
    *, client: ApiClient, customer_id: str, by: str, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """Everything COT holds about the customer, as one JSON document (schema in
    docs/API.md, "Customer data export"); the export is recorded."""
    now = now or timezone.now()
    holdings = selectors.customer_holdings(client=client, customer_id=customer_id)
    subject = holdings.subject
    document: dict[str, Any] = {
        "schema": EXPORT_SCHEMA,
        "schema_version": EXPORT_SCHEMA_VERSION,
        "generated_at": now.isoformat().replace("+00:00", "Z"),
        "client": client.name,
        "customer_id": customer_id,
    }
    for shredder in SHREDDERS:
        if shredder.section is not None:
            document[shredder.section] = shredder.export(subject)
    document["erasures"] = [
        {
            "at": request.created_at.isoformat().replace("+00:00", "Z"),
            "kept": request.kept,
        }
        for request in PrivacyRequest.objects.filter(
            client=client, customer_id=customer_id, kind=RequestKind.ERASURE
        ).order_by("created_at")
    ]
    PrivacyRequest.objects.create(
        kind=RequestKind.EXPORT,
        client=client,
        customer_id=customer_id,
        requested_by=by[:150],
        orders=len(holdings.orders),
        prescriptions=len(holdings.prescriptions),
    )
    return document


def customer_erase_preview(
    *, client: ApiClient, customer_id: str, now: datetime.datetime | None = None
) -> tuple[selectors.CustomerHoldings, list[Kept]]:
    """What an erasure would find, and what the law would keep of it (nothing written)."""
    holdings = selectors.customer_holdings(client=client, customer_id=customer_id)
    return holdings, kept(holdings.subject, now=now or timezone.now())


def customer_erase(
    *, client: ApiClient, customer_id: str, by: str, now: datetime.datetime | None = None
) -> PrivacyRequest:
    """Redact every copy of the customer's personal data now, except the records the law
    keeps (listed on the returned request, with why and until when; the retention job
    redacts them when their time comes). Raises CustomerInProgress, redacting nothing,
    while an order of theirs is in progress. Erasing again changes nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        holdings = selectors.customer_holdings(client=client, customer_id=customer_id, lock=True)
        if holdings.in_progress:
            raise CustomerInProgress(holdings.in_progress)
        subject = holdings.subject
        rows = shred(subject, now=now)
        held_back = kept(subject, now=now)
        request = PrivacyRequest.objects.create(
            kind=RequestKind.ERASURE,
            client=client,
            customer_id=customer_id,
            requested_by=by[:150],
            orders=len(holdings.orders),
            prescriptions=len(holdings.prescriptions),
            redacted=rows,
            kept=[k.as_dict() for k in held_back],
        )
        today = timezone.localdate(now)
        # A prescription the law keeps is not redacted yet: the retention job will be.
        records = [(RedactionKind.ORDER, o.pk) for o in holdings.orders] + [
            (RedactionKind.PRESCRIPTION, p.pk)
            for p in holdings.prescriptions
            if PrescriptionShredder.keep_until(p) <= today
        ]
        done = set(
            Redaction.objects.filter(
                kind__in=[RedactionKind.ORDER, RedactionKind.PRESCRIPTION],
                subject_id__in=[subject_id for _, subject_id in records],
            ).values_list("kind", "subject_id")
        )
        new = [
            Redaction(
                kind=kind,
                subject_id=subject_id,
                cause=RedactionCause.ERASURE,
                redacted_at=now,
                request=request,
            )
            for kind, subject_id in records
            if (kind, subject_id) not in done
        ]
        Redaction.objects.bulk_create(new)
        counts = {kind: sum(1 for r in new if r.kind == kind) for kind in RedactionKind.values}

        def count() -> None:
            for kind, number in counts.items():
                redactions_count(kind=kind, cause=RedactionCause.ERASURE, count=number)

        transaction.on_commit(count)
    return request
