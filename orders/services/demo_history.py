"""Plausible past orders for the demo and the forecasting benchmark: daily demand per SKU
and centre drawn from a known process (weekly season, trends, slow movers, a festival
spike), written as delivered orders through the real models in bulk: orders and lines,
committed reservations of real batches, and a few units that came back.

History orders carry no events (their timeline would feed the outbox: messages and
webhooks for orders long delivered), no payment and no shipment rows; their customer ids
start with HISTORY_CUSTOMER_PREFIX."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import F, Max

from core.models import ApiClient
from core.money import to_money
from inventory.enums import ReservationStatus, Schedule, StockReturnOutcome
from inventory.models import (
    FulfillmentCenter,
    Product,
    Reservation,
    ReservationItem,
    StockBatch,
    StockReturn,
)
from orders.enums import OrderStatus
from orders.models import Order, OrderLine, OrderNumber
from payments.enums import PaymentMethod

HISTORY_CUSTOMER_PREFIX = "HIST-"
# Monday .. Sunday: more sold at the weekend, least mid-week.
WEEKLY = (1.0, 0.9, 0.85, 0.95, 1.1, 1.35, 1.25)
FLAT = (1.0,) * 7
MAX_UNITS_PER_LINE = 100
PAYMENT_METHODS = (PaymentMethod.UPI, PaymentMethod.CARD, PaymentMethod.COD)


@dataclass(frozen=True)
class DemandProcess:
    """Expected units per day: `level` x weekly factor x (1 + trend x days) x the festival
    factor inside its window; each day's units are Poisson around it (a low level makes a
    slow mover: most days sell nothing)."""

    level: float
    weekly: tuple[float, ...] = FLAT
    trend_per_day: float = 0.0
    festival: tuple[datetime.date, datetime.date, float] | None = None

    def expected(self, days: Sequence[datetime.date], origin: datetime.date) -> np.ndarray:
        rates = []
        for day in days:
            rate = self.level * self.weekly[day.weekday()]
            rate *= max(1 + self.trend_per_day * (day - origin).days, 0.05)
            if self.festival and self.festival[0] <= day <= self.festival[1]:
                rate *= self.festival[2]
            rates.append(rate)
        return np.array(rates)

    def draw(
        self, days: Sequence[datetime.date], origin: datetime.date, rng: np.random.Generator
    ) -> np.ndarray:
        return rng.poisson(self.expected(days, origin))


def demo_processes(
    products: Sequence[Product],
    centers: Sequence[FulfillmentCenter],
    *,
    today: datetime.date,
    rng: np.random.Generator,
) -> dict[tuple[int, int], DemandProcess]:
    """A process per sellable product and centre: about a quarter slow movers, the rest
    weekly-seasonal at levels from a few units a day to a few dozen, one in seven growing
    and one in eleven fading, and the OTC range selling two and a half times as much for
    a week around a festival six weeks back. Schedule X is never sold online, and H1
    products are left unsold here (their sales would need the H1 register)."""
    festival = (
        today - datetime.timedelta(days=45),
        today - datetime.timedelta(days=38),
        2.5,
    )
    processes = {}
    for index, product in enumerate(products):
        if product.schedule in (Schedule.X, Schedule.H1):
            continue
        slow = index % 4 == 3
        level = float(rng.uniform(0.08, 0.4)) if slow else float(rng.lognormal(1.6, 0.6))
        trend = 0.004 if index % 7 == 1 else -0.002 if index % 11 == 5 else 0.0
        for rank, center in enumerate(centers):
            scale = 1.0 / (1 + 0.35 * rank)
            processes[(product.pk, center.pk)] = DemandProcess(
                level=level * scale,
                weekly=FLAT if slow else WEEKLY,
                trend_per_day=trend,
                festival=festival if product.schedule == Schedule.OTC and not slow else None,
            )
    return processes


def history_last_day() -> datetime.date | None:
    """The last day history orders were written for, if any."""
    last = Order.objects.filter(customer_id__startswith=HISTORY_CUSTOMER_PREFIX).aggregate(
        last=Max("confirmed_at")
    )["last"]
    return last.date() if last else None


@dataclass
class Written:
    orders: int = 0
    lines: int = 0
    units: int = 0
    returned: int = 0


def _batches_for(keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], StockBatch]:
    """The batch history orders take from at each product and centre: the latest-expiring."""
    keys = set(keys)
    chosen: dict[tuple[int, int], StockBatch] = {}
    product_ids = {p for p, _ in keys}
    for batch in StockBatch.objects.filter(product_id__in=product_ids).order_by("expires_on"):
        if (batch.product_id, batch.center_id) in keys:
            chosen[(batch.product_id, batch.center_id)] = batch
    return chosen


def order_history_write(
    *,
    client: ApiClient,
    demand: dict[tuple[int, int], np.ndarray],
    days: Sequence[datetime.date],
    lines_per_order: int = 3,
    units_per_line: int = 3,
    return_share: float = 0.01,
    rng: np.random.Generator,
) -> Written:
    """Write `demand[(product id, centre id)][i]` units sold on `days[i]` as delivered
    orders confirmed that day: each series' units split into lines of 1..units_per_line
    (at most MAX_UNITS_PER_LINE), packed into orders of up to `lines_per_order` distinct
    SKUs from one centre. About `return_share` of lines send one unit back (restocked).
    Series without a batch at their centre are skipped. One transaction per day."""
    batches = _batches_for(demand)
    products = {p.pk: p for p in Product.objects.filter(pk__in={p for p, _ in demand})}
    centers = {c.pk: c for c in FulfillmentCenter.objects.filter(pk__in={c for _, c in demand})}
    written = Written()
    keys = [key for key in demand if key in batches]
    for index, day in enumerate(days):
        per_center: dict[int, list[tuple[int, int]]] = {}
        for key in keys:
            units = int(demand[key][index])
            while units > 0:
                take = min(units, int(rng.integers(1, units_per_line + 1)), MAX_UNITS_PER_LINE)
                per_center.setdefault(key[1], []).append((key[0], take))
                units -= take
        if per_center:
            _write_day(
                client,
                day,
                per_center,
                batches,
                products,
                centers,
                written,
                rng,
                lines_per_order=lines_per_order,
                return_share=return_share,
            )
    return written


def _write_day(
    client: ApiClient,
    day: datetime.date,
    per_center: dict[int, list[tuple[int, int]]],
    batches: dict[tuple[int, int], StockBatch],
    products: dict[int, Product],
    centers: dict[int, FulfillmentCenter],
    written: Written,
    rng: np.random.Generator,
    *,
    lines_per_order: int,
    return_share: float,
) -> None:
    baskets: list[tuple[int, list[tuple[int, int]]]] = []
    for center_id, lines in per_center.items():
        order_lines: list[tuple[int, int]] = []
        for position in rng.permutation(len(lines)):
            product_id, quantity = lines[position]
            if len(order_lines) >= lines_per_order or any(p == product_id for p, _ in order_lines):
                baskets.append((center_id, order_lines))
                order_lines = []
            order_lines.append((product_id, quantity))
        if order_lines:
            baskets.append((center_id, order_lines))
    midnight = datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
    with transaction.atomic():
        numbers = OrderNumber.objects.bulk_create([OrderNumber() for _ in baskets])
        orders, lines, reservations = [], [], []
        for (center_id, basket), number in zip(baskets, numbers, strict=True):
            center = centers[center_id]
            order_lines = [
                OrderLine(
                    sku=products[p].sku,
                    name=products[p].name,
                    schedule=products[p].schedule,
                    quantity=q,
                    unit_price=products[p].price,
                    line_total=to_money(products[p].price * q),
                    requires_prescription=products[p].requires_prescription,
                )
                for p, q in basket
            ]
            prefix = (center.pincode_prefixes or ["560"])[0]
            order = Order(
                id=uuid.uuid4(),
                number=f"COT-{number.pk:08d}",
                client=client,
                channel=client.channel,
                customer_id=f"{HISTORY_CUSTOMER_PREFIX}{int(rng.integers(1, 20000)):05d}",
                delivery_address={
                    "name": "Demo Customer",
                    "line1": "1 Demo Street",
                    "line2": "",
                    "city": center.name,
                    "state": "",
                    "pincode": f"{prefix}{'0' * (5 - len(prefix))}1"[:6],
                    "phone": "+919800000000",
                },
                payment_method=PAYMENT_METHODS[int(rng.integers(0, len(PAYMENT_METHODS)))],
                total_amount=to_money(sum((line.line_total for line in order_lines), start=0)),
                status=OrderStatus.DELIVERED,
                confirmed_at=midnight
                + datetime.timedelta(seconds=int(rng.integers(8 * 3600, 22 * 3600))),
            )
            for line in order_lines:
                line.order = order
            orders.append(order)
            lines.extend(order_lines)
            reservations.append(
                (
                    Reservation(order_id=order.id, status=ReservationStatus.COMMITTED),
                    center_id,
                    basket,
                )
            )
        Order.objects.bulk_create(orders, batch_size=2000)
        OrderLine.objects.bulk_create(lines, batch_size=5000)
        Reservation.objects.bulk_create([r for r, _, _ in reservations], batch_size=2000)
        items, returns = [], []
        for reservation, center_id, basket in reservations:
            for product_id, quantity in basket:
                batch = batches[(product_id, center_id)]
                items.append(
                    ReservationItem(reservation=reservation, batch=batch, quantity=quantity)
                )
                if rng.random() < return_share:
                    returns.append(
                        StockReturn(
                            batch=batch,
                            quantity=1,
                            outcome=StockReturnOutcome.RESTOCKED,
                            order_id=reservation.order_id,
                            reference=f"history:{reservation.order_id}",
                            by="history",
                        )
                    )
        ReservationItem.objects.bulk_create(items, batch_size=5000)
        StockReturn.objects.bulk_create(returns, batch_size=2000)
        # auto_now_add stamps bulk-created rows with now; history happened that day.
        Order.objects.filter(pk__in=[o.pk for o in orders]).update(
            created_at=F("confirmed_at") - datetime.timedelta(minutes=3),
            updated_at=F("confirmed_at"),
        )
    written.orders += len(orders)
    written.lines += len(lines)
    written.units += sum(line.quantity for line in lines)
    written.returned += len(returns)


def bench_catalog_create(*, skus: int, centers: int, today: datetime.date) -> None:
    """`skus` products (BENCH-00001, ...) stocked at `centers` centres (BN-1, ...): two
    batches each, one far from expiry and one that passes the shelf-life floor within
    weeks. Idempotent."""
    places = []
    for n in range(1, centers + 1):
        center, _ = FulfillmentCenter.objects.get_or_create(
            code=f"BN-{n}",
            defaults={"name": f"Bench {n}", "priority": 100 + n, "pincode_prefixes": [f"9{n:02d}"]},
        )
        places.append(center)
    Product.objects.bulk_create(
        [
            Product(
                sku=f"BENCH-{n:05d}",
                name=f"Bench product {n}",
                price="25.00",
                schedule=Schedule.H if n % 5 == 0 else Schedule.OTC,
            )
            for n in range(1, skus + 1)
        ],
        ignore_conflicts=True,
    )
    products = Product.objects.filter(sku__startswith="BENCH-")
    StockBatch.objects.bulk_create(
        [
            StockBatch(
                product=product,
                center=center,
                batch=f"{kind}-{product.pk}-{center.pk}",
                expires_on=today + datetime.timedelta(days=days),
                on_hand=on_hand,
            )
            for product in products
            for center in places
            for kind, days, on_hand in (("FAR", 400, 300), ("NEAR", 45, 40))
        ],
        batch_size=5000,
        ignore_conflicts=True,
    )
