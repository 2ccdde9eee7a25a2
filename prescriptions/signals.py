"""News about a prescription that `orders` needs: a pharmacist decided, so the orders
waiting on it can go on. `orders` subscribes; prescriptions never imports it.

Sent after the decision commits, with `prescription_id` and `status` (approved or
rejected).
"""

from __future__ import annotations

import django.dispatch

prescription_reviewed = django.dispatch.Signal()
