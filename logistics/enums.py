from django.db import models


class ShipmentStatus(models.TextChoices):
    BOOKED = "booked", "Booked"
    PICKED_UP = "picked_up", "Picked up"
    IN_TRANSIT = "in_transit", "In transit"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Delivery failed"
    CANCELLED = "cancelled", "Cancelled"
