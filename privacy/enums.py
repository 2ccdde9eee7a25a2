from django.db import models


class RequestKind(models.TextChoices):
    EXPORT = "export", "Export"
    ERASURE = "erasure", "Erasure"


class RedactionKind(models.TextChoices):
    """The unit one redaction covers, in one transaction."""

    # An order and every copy of its personal data (address, contact, messages, notes...).
    ORDER = "order", "Order"
    PRESCRIPTION = "prescription", "Prescription"
    # The Schedule H1 register rows of one order, once the law lets them go.
    REGISTER = "register", "H1 register rows"


class RedactionCause(models.TextChoices):
    RETENTION = "retention", "Retention period over"
    ERASURE = "erasure", "Customer's erasure request"
