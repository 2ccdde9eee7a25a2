from logistics.services.amend import (
    ParcelUnits,
    ShipmentNotBooked,
    UnitsCancelled,
    UnitsNotInShipment,
    shipment_amendment_send,
    shipment_units_cancel,
)
from logistics.services.booking import (
    FULFILMENT_UNAVAILABLE,
    BookingInProgress,
    BookOutcome,
    ParcelItem,
    shipment_book,
    shipment_cancel,
)
from logistics.services.tracking import shipment_tracking_apply

__all__ = [
    "FULFILMENT_UNAVAILABLE",
    "BookOutcome",
    "BookingInProgress",
    "ParcelItem",
    "ParcelUnits",
    "ShipmentNotBooked",
    "UnitsCancelled",
    "UnitsNotInShipment",
    "shipment_amendment_send",
    "shipment_book",
    "shipment_cancel",
    "shipment_tracking_apply",
    "shipment_units_cancel",
]
