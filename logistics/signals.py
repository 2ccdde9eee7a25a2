"""Tracking news from a partner's webhook, applied to a shipment. `orders` subscribes
(logistics never imports `orders`).

Sent inside the transaction that changed the shipment, with `order_id`, `status` (the
shipment's new status) and `data` (`awb`, `center`, `partner`, `at`, `attempt` (the
delivery attempt, for out_for_delivery, delivery_failed and delivered, else None),
`reason` (why a delivery failed, or None) and `tracking_url`), so that the shipment's
change and the order's reaction commit together or not at all.
"""

from __future__ import annotations

import django.dispatch

shipment_changed = django.dispatch.Signal()
