from django.db import models


class PaymentMethod(models.TextChoices):
    UPI = "upi", "UPI"
    CARD = "card", "Card"
    NETBANKING = "netbanking", "Net banking"
    WALLET = "wallet", "Wallet"
    COD = "cod", "Cash on delivery"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PREPARED = "prepared", "Prepared"
    PENDING_COLLECTION = "pending_collection", "Pending collection (COD)"
    CAPTURED = "captured", "Captured"
    DECLINED = "declined", "Declined"
    FAILED = "failed", "Failed"
    VOIDED = "voided", "Voided"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"


class AttemptStatus(models.TextChoices):
    """A gateway call's outcome; started, unavailable, error and abandoned mean what
    `core.attempts` says."""

    STARTED = "started", "Started"
    CAPTURED = "captured", "Captured"
    DECLINED = "declined", "Declined"
    UNAVAILABLE = "unavailable", "Gateway unavailable"
    ERROR = "error", "Error (outcome unknown)"
    FAILED = "failed", "Failed (gateway notice)"
    REFUNDED = "refunded", "Refunded"
    # The gateway refused the refund (4xx): no money moved; ops decide what next.
    REFUSED = "refused", "Refused by the gateway"
    ABANDONED = "abandoned", "Abandoned before sending"


# A charge attempt in one of these surely took no money: the next attempt may go to
# another gateway.
NOT_CAPTURED = frozenset({AttemptStatus.UNAVAILABLE, AttemptStatus.FAILED, AttemptStatus.ABANDONED})
