"""`load_catalog`: products, centres and stock batches from one JSON document.

All or nothing: every entry is validated first, and the first bad one is named; then the
rows are upserted in bulk inside one transaction. Loading a batch again sets its quantity.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from inventory.enums import Schedule
from inventory.models import FulfillmentCenter, Product, StockBatch

_SKU = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,63}$")
_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,19}$")
_PREFIX = re.compile(r"^[1-9][0-9]{0,5}$")
_BULK = 2000


class CatalogError(ValueError):
    """A bad entry; `where` names it (e.g. `stock[12].quantity`)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclass(frozen=True)
class CatalogCounts:
    products: int
    centers: int
    stock: int


def _entries(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise CatalogError(key, "must be a list")
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise CatalogError(f"{key}[{index}]", "must be an object")
    return value


def _text(
    entry: dict, field: str, where: str, *, pattern: re.Pattern | None = None, max_length: int = 200
) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise CatalogError(
            f"{where}.{field}", f"must be a non-empty string of at most {max_length}"
        )
    if "\x00" in value or (pattern is not None and not pattern.match(value)):
        raise CatalogError(f"{where}.{field}", f"has an invalid format: {value!r}")
    return value


def _optional_text(entry: dict, field: str, where: str, *, max_length: int) -> str:
    value = entry.get(field, "")
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise CatalogError(f"{where}.{field}", f"must be a string of at most {max_length}")
    return value.strip()


def _int(entry: dict, field: str, where: str, *, minimum: int, maximum: int = 10**9) -> int:
    value = entry.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise CatalogError(f"{where}.{field}", f"must be an integer from {minimum} to {maximum}")
    return value


def _validate_product(entry: dict, where: str) -> Product:
    try:
        price = Decimal(str(entry.get("price")))
    except InvalidOperation:
        price = Decimal("-1")
    if (
        not price.is_finite()
        or price < 0
        or price >= Decimal("1e8")
        or price != price.quantize(Decimal("0.01"))
    ):
        raise CatalogError(f"{where}.price", "must be a non-negative amount with two decimals")
    schedule = entry.get("schedule")
    if schedule not in Schedule.values:
        raise CatalogError(f"{where}.schedule", f"must be one of {', '.join(Schedule.values)}")
    active = entry.get("active", True)
    if not isinstance(active, bool):
        raise CatalogError(f"{where}.active", "must be true or false")
    cold_chain = entry.get("cold_chain", False)
    if not isinstance(cold_chain, bool):
        raise CatalogError(f"{where}.cold_chain", "must be true or false")
    composition = _optional_text(entry, "composition", where, max_length=200)
    return Product(
        sku=_text(entry, "sku", where, pattern=_SKU, max_length=64),
        name=_text(entry, "name", where),
        price=price,
        schedule=schedule,
        active=active,
        cold_chain=cold_chain,
        # Compared for substitution: one spelling, whatever the file's case and spaces.
        composition=" ".join(composition.lower().split()),
        manufacturer=_optional_text(entry, "manufacturer", where, max_length=100),
    )


def _validate_center(entry: dict, where: str) -> FulfillmentCenter:
    prefixes = entry.get("pincode_prefixes")
    if not isinstance(prefixes, list) or not prefixes:
        raise CatalogError(f"{where}.pincode_prefixes", "must be a non-empty list")
    for index, prefix in enumerate(prefixes):
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise CatalogError(
                f"{where}.pincode_prefixes[{index}]", "must be 1-6 digits, not 0 first"
            )
    return FulfillmentCenter(
        code=_text(entry, "code", where, pattern=_CODE, max_length=20),
        name=_text(entry, "name", where, max_length=100),
        priority=_int(entry, "priority", where, minimum=1, maximum=10_000),
        pincode_prefixes=prefixes,
    )


def _validate_stock(entry: dict, where: str) -> tuple[str, str, str, datetime.date, int]:
    center = _text(entry, "center", where, max_length=20)
    sku = _text(entry, "sku", where, max_length=64)
    batch = _text(entry, "batch", where, max_length=64)
    try:
        expires_on = datetime.date.fromisoformat(str(entry.get("expires_on")))
    except ValueError:
        raise CatalogError(f"{where}.expires_on", "must be a date YYYY-MM-DD") from None
    quantity = _int(entry, "quantity", where, minimum=0)
    return center, sku, batch, expires_on, quantity


def catalog_load(data: Any) -> CatalogCounts:
    """Validate everything, then upsert in one transaction. Raises `CatalogError`."""
    if not isinstance(data, dict):
        raise CatalogError("catalog", "must be a JSON object")
    unknown = set(data) - {"products", "centers", "stock"}
    if unknown:
        raise CatalogError("catalog", f"unknown keys: {', '.join(sorted(unknown))}")

    products = [
        _validate_product(e, f"products[{i}]") for i, e in enumerate(_entries(data, "products"))
    ]
    centers = [
        _validate_center(e, f"centers[{i}]") for i, e in enumerate(_entries(data, "centers"))
    ]
    stock = [_validate_stock(e, f"stock[{i}]") for i, e in enumerate(_entries(data, "stock"))]
    for label, keys in (
        ("products", [p.sku for p in products]),
        ("centers", [c.code for c in centers]),
    ):
        seen: set[str] = set()
        for index, key in enumerate(keys):
            if key in seen:
                raise CatalogError(f"{label}[{index}]", f"duplicate {key!r}")
            seen.add(key)

    with transaction.atomic():
        if products:
            Product.objects.bulk_create(
                products,
                batch_size=_BULK,
                update_conflicts=True,
                unique_fields=["sku"],
                update_fields=[
                    "name",
                    "price",
                    "schedule",
                    "active",
                    "cold_chain",
                    "composition",
                    "manufacturer",
                ],
            )
        if centers:
            FulfillmentCenter.objects.bulk_create(
                centers,
                batch_size=_BULK,
                update_conflicts=True,
                unique_fields=["code"],
                update_fields=["name", "priority", "pincode_prefixes"],
            )
        if stock:
            _load_stock(stock)
    return CatalogCounts(products=len(products), centers=len(centers), stock=len(stock))


def _load_stock(stock: list[tuple[str, str, str, datetime.date, int]]) -> None:
    product_ids = dict(Product.objects.values_list("sku", "pk"))
    center_ids = dict(FulfillmentCenter.objects.values_list("code", "pk"))
    existing = {
        (b.product_id, b.center_id, b.batch): b
        for b in StockBatch.objects.select_for_update().order_by("pk")
    }
    rows: dict[tuple[int, int, str], StockBatch] = {}
    for index, (center, sku, batch, expires_on, quantity) in enumerate(stock):
        where = f"stock[{index}]"
        if sku not in product_ids:
            raise CatalogError(f"{where}.sku", f"unknown product {sku!r}")
        if center not in center_ids:
            raise CatalogError(f"{where}.center", f"unknown centre {center!r}")
        key = (product_ids[sku], center_ids[center], batch)
        if key in rows:
            raise CatalogError(where, f"duplicate batch {batch!r} of {sku} at {center}")
        current = existing.get(key)
        if current is not None and quantity < current.reserved:
            raise CatalogError(
                f"{where}.quantity", f"{quantity} is below the {current.reserved} units reserved"
            )
        rows[key] = StockBatch(
            product_id=key[0],
            center_id=key[1],
            batch=batch,
            expires_on=expires_on,
            on_hand=quantity,
        )
    StockBatch.objects.bulk_create(
        rows.values(),
        batch_size=_BULK,
        update_conflicts=True,
        unique_fields=["product", "center", "batch"],
        update_fields=["expires_on", "on_hand"],
    )


STOCK_CSV_COLUMNS = ("center", "sku", "batch", "expires_on", "quantity")
_STOCK_ENTRY = re.compile(r"^stock\[(\d+)\]")
_DIGITS = re.compile(r"^[0-9]{1,12}$")


def catalog_load_stock_csv(*, text: str) -> CatalogCounts:
    """Stock batches from CSV (header `center,sku,batch,expires_on,quantity`), loaded by
    `catalog_load` with exactly its rules; errors name the file's line (`line 3.quantity`)."""
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(name.strip() for name in reader.fieldnames or ())
    if sorted(header) != sorted(STOCK_CSV_COLUMNS):
        raise CatalogError("header", f"must be the columns {','.join(STOCK_CSV_COLUMNS)}")
    reader.fieldnames = list(header)
    rows: list[dict[str, Any]] = []
    line_numbers: list[int] = []  # blank lines are skipped, so count the reader's lines
    try:
        for row in reader:
            line_numbers.append(reader.line_num)
            if None in row or any(value is None for value in row.values()):
                raise CatalogError(f"stock[{len(rows)}]", "has the wrong number of columns")
            entry: dict[str, Any] = {key: value.strip() for key, value in row.items()}
            # CSV has no numbers: a quantity of digits is one, anything else stays text
            # for `catalog_load` to refuse.
            if _DIGITS.match(entry["quantity"]):
                entry["quantity"] = int(entry["quantity"])
            rows.append(entry)
        return catalog_load({"stock": rows})
    except CatalogError as exc:
        match = _STOCK_ENTRY.match(exc.where)
        if match is None:
            raise
        where = f"line {line_numbers[int(match.group(1))]}{exc.where[match.end() :]}"
        raise CatalogError(where, str(exc).partition(": ")[2]) from None
