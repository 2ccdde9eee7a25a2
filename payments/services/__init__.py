from payments.services.charge import (
    PAYMENT_DECLINED,
    PAYMENT_UNAVAILABLE,
    ChargeInProgress,
    ChargeOutcome,
    payment_amount_set,
    payment_charge,
    payment_prepare,
    payment_retry_open,
)
from payments.services.notices import payment_notice_apply
from payments.services.refunds import (
    NotRefundable,
    RefundExceedsCapture,
    payment_cancel,
    payment_collect,
    payment_refund,
    refund_left,
    refund_request,
)

__all__ = [
    "PAYMENT_DECLINED",
    "PAYMENT_UNAVAILABLE",
    "ChargeInProgress",
    "ChargeOutcome",
    "NotRefundable",
    "RefundExceedsCapture",
    "payment_amount_set",
    "payment_cancel",
    "payment_charge",
    "payment_collect",
    "payment_notice_apply",
    "payment_prepare",
    "payment_refund",
    "payment_retry_open",
    "refund_left",
    "refund_request",
]
