"""A synthetic catalog of any size, for the 50,000-row test and docs/BENCHMARKS.md:
`python -m inventory.tests.large_catalog 50000 > /tmp/catalog.json`."""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any


def large_catalog(stock_rows: int, *, centers: int = 5, batches_per_product: int = 2) -> dict:
    products = -(-stock_rows // (centers * batches_per_product))
    start = datetime.date(2027, 1, 1)
    stock: list[dict[str, Any]] = []
    for n in range(stock_rows):
        product, rest = divmod(n, centers * batches_per_product)
        center, batch = divmod(rest, batches_per_product)
        stock.append(
            {
                "center": f"C{center:02d}",
                "sku": f"SKU-{product:06d}",
                "batch": f"B{batch}-{product:06d}",
                "expires_on": (start + datetime.timedelta(days=n % 700)).isoformat(),
                "quantity": 100 + n % 900,
            }
        )
    return {
        "products": [
            {"sku": f"SKU-{p:06d}", "name": f"Product {p}", "price": "12.50", "schedule": "otc"}
            for p in range(products)
        ],
        "centers": [
            {
                "code": f"C{c:02d}",
                "name": f"Centre {c}",
                "priority": c + 1,
                "pincode_prefixes": [str(100 + c)],
            }
            for c in range(centers)
        ],
        "stock": stock,
    }


if __name__ == "__main__":
    json.dump(large_catalog(int(sys.argv[1])), sys.stdout)
