"""News about a payment that the order pipeline did not ask for: a gateway's late notice
(webhook) or an ops refund. `orders` subscribes (payments never imports `orders`).

Sent inside the transaction that changed the payment, with `order_id`, `status` (the
payment's new status) and `data` (a small dict for the order's timeline), so that the
payment's change and the order's record of it commit together or not at all.
"""

from __future__ import annotations

import django.dispatch

payment_changed = django.dispatch.Signal()
