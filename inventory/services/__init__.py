from inventory.services.catalog import CatalogError, catalog_load, catalog_load_stock_csv
from inventory.services.stock import (
    Allocation,
    LineRequest,
    ReserveOutcome,
    stock_commit,
    stock_release,
    stock_reserve,
    stock_restock,
)

__all__ = [
    "Allocation",
    "CatalogError",
    "LineRequest",
    "ReserveOutcome",
    "catalog_load",
    "catalog_load_stock_csv",
    "stock_commit",
    "stock_release",
    "stock_reserve",
    "stock_restock",
]
