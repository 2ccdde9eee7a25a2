"""Reads: whose data is due for redaction, and what is held about one customer."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Exists, OuterRef

from core.models import ApiClient
from orders.enums import TERMINAL
from orders.models import Order, OrderEvent, Return, ReturnStatus
from prescriptions.models import H1RegisterEntry, Prescription
from privacy.enums import RedactionKind
from privacy.models import Redaction
from privacy.shredders import (
    H1_REGISTER_KEEP_YEARS,
    PRESCRIPTION_KEEP_YEARS,
    REDACTED,
    Subject,
)

# A return still being handled: the order's data is still in use.
OPEN_RETURNS = (ReturnStatus.REQUESTED, ReturnStatus.APPROVED, ReturnStatus.RECEIVED)


def _years_before(now: datetime.datetime, years: int) -> datetime.datetime:
    # 366 days a year: never a day short of the law's period, whatever the leap years.
    return now - datetime.timedelta(days=366 * years)


def _redacted(kind: str) -> Exists:
    return Exists(Redaction.objects.filter(kind=kind, subject_id=OuterRef("pk")))


def orders_past_retention(*, now: datetime.datetime, limit: int | None = None) -> list[uuid.UUID]:
    """Orders that ended (a final status) with nothing happening to them for
    COT_PII_RETENTION_DAYS (no event since: a late refund or message counts as use), no
    return open, and not redacted yet; the longest-quiet first."""
    cutoff = now - datetime.timedelta(days=settings.COT_PII_RETENTION_DAYS)
    # `updated_at` is never later than the order's last event: the index on
    # (status, updated_at) narrows the search to orders quiet that long.
    orders = (
        Order.objects.filter(status__in=TERMINAL, updated_at__lt=cutoff)
        .exclude(Exists(OrderEvent.objects.filter(order=OuterRef("pk"), at__gte=cutoff)))
        .exclude(Exists(Return.objects.filter(order=OuterRef("pk"), status__in=OPEN_RETURNS)))
        .exclude(_redacted(RedactionKind.ORDER))
        .order_by("updated_at", "pk")
        .values_list("pk", flat=True)
    )
    return list(orders[:limit] if limit else orders)


def prescriptions_past_keep(*, now: datetime.datetime, limit: int | None = None) -> list[uuid.UUID]:
    """Prescriptions issued and uploaded more than PRESCRIPTION_KEEP_YEARS ago (the
    shredder checks the exact date), not drawn on by an order still in progress, and not
    redacted yet."""
    cutoff = _years_before(now, PRESCRIPTION_KEEP_YEARS)
    in_use = Order.objects.filter(prescription_id=OuterRef("pk")).exclude(status__in=TERMINAL)
    prescriptions = (
        Prescription.objects.filter(created_at__lt=cutoff, issued_on__lt=cutoff.date())
        .exclude(Exists(in_use))
        .exclude(_redacted(RedactionKind.PRESCRIPTION))
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)
    )
    return list(prescriptions[:limit] if limit else prescriptions)


def register_orders_past_keep(
    *, now: datetime.datetime, limit: int | None = None
) -> list[uuid.UUID]:
    """Orders whose own data is redacted already and that have Schedule H1 register
    rows older than H1_REGISTER_KEEP_YEARS still carrying the patient's name."""
    cutoff = _years_before(now, H1_REGISTER_KEEP_YEARS)
    orders = (
        H1RegisterEntry.objects.filter(recorded_at__lt=cutoff)
        .exclude(patient_name=REDACTED)
        .filter(
            order_id__in=Redaction.objects.filter(kind=RedactionKind.ORDER).values("subject_id")
        )
        .order_by("order_id")
        .values_list("order_id", flat=True)
        .distinct()
    )
    return list(orders[:limit] if limit else orders)


@dataclass(frozen=True)
class CustomerHoldings:
    """What COT holds about one customer of one client."""

    client: ApiClient
    customer_id: str
    orders: list[Order]
    prescriptions: list[Prescription]
    # Orders not yet in a final status, or with a return still open: in progress.
    in_progress: list[str]

    @property
    def subject(self) -> Subject:
        return Subject(
            order_ids=frozenset(o.pk for o in self.orders),
            prescription_ids=frozenset(p.pk for p in self.prescriptions),
        )


def customer_holdings(
    *, client: ApiClient, customer_id: str, lock: bool = False
) -> CustomerHoldings:
    """The customer's orders and prescriptions (`lock`: their rows locked, in primary key
    order, until the transaction ends, so none changes status meanwhile)."""
    orders = Order.objects.filter(client=client, customer_id=customer_id).order_by("pk")
    prescriptions = Prescription.objects.filter(client=client, customer_id=customer_id)
    if lock:
        orders = orders.select_for_update()
        prescriptions = prescriptions.select_for_update()
    order_rows = list(orders)
    open_returns = set(
        Return.objects.filter(
            order__in=[o.pk for o in order_rows], status__in=OPEN_RETURNS
        ).values_list("order_id", flat=True)
    )
    return CustomerHoldings(
        client=client,
        customer_id=customer_id,
        orders=sorted(order_rows, key=lambda o: (o.created_at, o.number)),
        prescriptions=list(prescriptions.order_by("pk")),
        in_progress=sorted(
            o.number for o in order_rows if o.status not in TERMINAL or o.pk in open_returns
        ),
    )


def api_client_named(name: str) -> ApiClient | None:
    return ApiClient.objects.filter(name=name).first()


def customer_find(*, order_number: str) -> tuple[ApiClient, str] | None:
    """The client and customer id of an order, by its number (the admin's lookup)."""
    order = Order.objects.select_related("client").filter(number=order_number.strip()).first()
    return (order.client, order.customer_id) if order else None
