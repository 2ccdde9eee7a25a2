"""Reads of the catalog and stock: what other apps and the API ask of inventory."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from inventory.enums import ReservationStatus
from inventory.models import FulfillmentCenter, Product, Reservation, StockBatch, StockReturn


def shelf_life_floor(*, today: datetime.date | None = None) -> datetime.date:
    """Batches expiring before this day are not sold (COT_SHELF_LIFE_FLOOR_DAYS ahead)."""
    return (today or timezone.localdate()) + datetime.timedelta(
        days=settings.COT_SHELF_LIFE_FLOOR_DAYS
    )


def centers_serving(*, pincode: str) -> list[FulfillmentCenter]:
    """Active centres whose pincode prefixes match, highest priority first."""
    return [c for c in FulfillmentCenter.objects.filter(active=True) if c.serves(pincode)]


def centers_for(*, pincode: str = "", center: str = "") -> list[FulfillmentCenter]:
    """Where an order's stock may come from: the one centre an in-store pickup order
    names (none once it is inactive), else the active centres serving the pincode."""
    if center:
        return list(FulfillmentCenter.objects.filter(code=center, active=True))
    return centers_serving(pincode=pincode)


def center_is_active(*, code: str) -> bool:
    return FulfillmentCenter.objects.filter(code=code, active=True).exists()


def center_exists(*, code: str) -> bool:
    """Whether the catalog has a centre of this code, active or not."""
    return FulfillmentCenter.objects.filter(code=code).exists()


def center_name(*, code: str) -> str:
    """The centre's name as customers know it (its code when there is no such centre)."""
    name = FulfillmentCenter.objects.filter(code=code).values_list("name", flat=True).first()
    return name or code


def product_list(*, search: str = "", sku: str = "") -> QuerySet[Product]:
    """Active products, optionally one SKU and/or a case-insensitive match on SKU or name."""
    products = Product.objects.filter(active=True)
    if sku:
        products = products.filter(sku=sku)
    if search:
        products = products.filter(Q(sku__icontains=search) | Q(name__icontains=search))
    return products


def product_skus_known(*, skus: Iterable[str]) -> set[str]:
    """Which of these SKUs the catalog has (active or not)."""
    return set(Product.objects.filter(sku__in=skus).values_list("sku", flat=True))


def product_available(
    *,
    product_ids: list[int],
    pincode: str = "",
    center: str = "",
    today: datetime.date | None = None,
) -> dict[int, int]:
    """Units an order to `pincode` (or picked up at `center`) could get now, per product:
    free units of batches past the shelf-life floor at the active centres serving the
    pincode (or that centre). Two queries, whatever the number of products."""
    available = dict.fromkeys(product_ids, 0)
    centers = centers_for(pincode=pincode, center=center)
    if not centers or not product_ids:
        return available
    rows = (
        StockBatch.objects.filter(
            product_id__in=product_ids,
            center__in=centers,
            expires_on__gte=shelf_life_floor(today=today),
            on_hand__gt=F("reserved"),
        )
        .values("product_id")
        .annotate(units=Sum(F("on_hand") - F("reserved")))
        .order_by()
    )
    available.update({row["product_id"]: row["units"] for row in rows})
    return available


@dataclass(frozen=True)
class Substitute:
    sku: str
    name: str
    manufacturer: str
    price: Decimal
    available: int


def product_substitutes(
    *, sku: str, pincode: str = "", center: str = "", quantity: int = 1
) -> list[Substitute]:
    """Products that may stand in for `sku` in an order to `pincode` (or picked up at
    `center`): active, of the same (non-empty) composition and schedule class, with at
    least `quantity` units an order there could get now (`product_available`). Cheapest
    first."""
    product = Product.objects.filter(sku=sku).first()
    if product is None or not product.composition:
        return []
    candidates = list(
        Product.objects.filter(
            composition=product.composition, schedule=product.schedule, active=True
        )
        .exclude(pk=product.pk)
        .order_by("price", "sku")
    )
    available = product_available(
        product_ids=[p.pk for p in candidates], pincode=pincode, center=center
    )
    return [
        Substitute(p.sku, p.name, p.manufacturer, p.price, available[p.pk])
        for p in candidates
        if available[p.pk] >= quantity
    ]


def reservation_held_order_ids(
    *, created_before: datetime.datetime, limit: int, after: int = 0
) -> list[tuple[int, uuid.UUID]]:
    """(reservation id, order id) of reservations still held and made before
    `created_before`, in id order from after `after`: the reservation-expiry job's
    worklist, one page at a time."""
    return list(
        Reservation.objects.filter(
            status=ReservationStatus.HELD, created_at__lt=created_before, pk__gt=after
        )
        .order_by("pk")
        .values_list("pk", "order_id")[:limit]
    )


@dataclass(frozen=True)
class ReturnedStock:
    """Units of one batch that came back from an order, and what became of them."""

    center: str
    sku: str
    batch: str
    quantity: int
    outcome: str
    reason: str
    reference: str
    by: str
    at: datetime.datetime


def stock_returns_of(*, order_id: uuid.UUID) -> list[ReturnedStock]:
    """Everything taken back from this order, oldest first: for its timeline."""
    returns = (
        StockReturn.objects.filter(order_id=order_id)
        .select_related("batch__product", "batch__center")
        .order_by("created_at", "pk")
    )
    return [
        ReturnedStock(
            center=r.batch.center.code,
            sku=r.batch.product.sku,
            batch=r.batch.batch,
            quantity=r.quantity,
            outcome=r.outcome,
            reason=r.reason,
            reference=r.reference,
            by=r.by,
            at=r.created_at,
        )
        for r in returns
    ]
