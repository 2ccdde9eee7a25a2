"""Cancellation by the client (API) or ops (admin), allowed until the order ships.

The order moves to `cancelled` compare-and-set from any status before `shipped`, and in
the same transaction its stock goes back (held stock released; committed stock of a
confirmed order put back on hand) and its prescription claims are returned (`order_end`).
The partner bookings are cancelled and the payment refunded or voided after commit, by the
retried compensation task. A pipeline step running meanwhile finds the order ended: the
charge and booking steps compensate again for what they did after the cancel.
"""

from __future__ import annotations

from orders.enums import CANCELLABLE, FailureReason, OrderStatus
from orders.models import Order
from orders.services.ending import order_end
from orders.services.transitions import InvalidTransition

CLIENT = "client"
OPS = "ops"
REASONS = {CLIENT: FailureReason.CANCELLED_BY_CLIENT, OPS: FailureReason.CANCELLED_BY_OPS}


def order_cancel(*, order: Order, by: str, actor: str, note: str = "") -> None:
    """Cancel `order` on behalf of `by` (`client` or `ops`); `actor` names who (an API
    client or a staff user) and `note` is their reason, both kept on the timeline.

    Raises InvalidTransition when the order has shipped or already ended, including when
    another actor moved it first: a second cancel is a 409, not a replay."""
    data = {"by": actor, "note": note}
    if order.status not in CANCELLABLE or not order_end(
        order=order, to=OrderStatus.CANCELLED, reason=REASONS[by], expected=CANCELLABLE, data=data
    ):
        order.refresh_from_db(fields=["status"])
        raise InvalidTransition(order.status, OrderStatus.CANCELLED)
