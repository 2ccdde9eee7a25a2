from inventory.services.catalog import CatalogError, catalog_load
from inventory.services.stock import (
    Allocation,
    LineRequest,
    ReserveOutcome,
    stock_commit,
    stock_release,
    stock_reserve,
)

__all__ = [
    "Allocation",
    "CatalogError",
    "LineRequest",
    "ReserveOutcome",
    "catalog_load",
    "stock_commit",
    "stock_release",
    "stock_reserve",
]
