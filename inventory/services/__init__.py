from inventory.services.catalog import CatalogError, catalog_load, catalog_load_stock_csv
from inventory.services.returns import UnknownBatchError, stock_take_back
from inventory.services.stock import (
    Allocation,
    LineRequest,
    ReserveOutcome,
    UnitsNotCommitted,
    stock_commit,
    stock_release,
    stock_release_held_sku,
    stock_release_units,
    stock_reserve,
    stock_restock,
    stock_swap_held_sku,
)

__all__ = [
    "Allocation",
    "CatalogError",
    "LineRequest",
    "ReserveOutcome",
    "UnitsNotCommitted",
    "UnknownBatchError",
    "catalog_load",
    "catalog_load_stock_csv",
    "stock_commit",
    "stock_release",
    "stock_release_held_sku",
    "stock_release_units",
    "stock_reserve",
    "stock_restock",
    "stock_swap_held_sku",
    "stock_take_back",
]
