"""The record of what was done with customers' personal data: each export or erasure a
customer asked for (`PrivacyRequest`), and each record whose personal data was redacted
(`Redaction`), by the retention job or an erasure. Neither holds a name, phone or address:
a request names the client and its customer id, and lists what the law keeps by record.
Each request is in the audit trail of staff changes too (`PrivacyRequestAudit`), with
who made it: the staff member in admin, or who ran the command."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.db.models import Q

from audit.models import audited
from core.models import ApiClient
from privacy.enums import RedactionCause, RedactionKind, RequestKind


class PrivacyRecordDeletion(Exception):
    """A data-rights request is proof of what was asked and done: never deleted."""


class NeverDeletedQuerySet(models.QuerySet):
    def delete(self) -> tuple[int, dict[str, int]]:
        raise PrivacyRecordDeletion(f"{self.model.__name__} rows are never deleted")


class PrivacyRequest(models.Model):
    """One export or erasure of one customer's data (a customer of one API client), who
    ran it and when; for an erasure, how many rows each store redacted and the records
    the law keeps (with why and until when)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=10, choices=RequestKind.choices)
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="+")
    customer_id = models.CharField(max_length=64)
    requested_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    orders = models.PositiveIntegerField(default=0)
    prescriptions = models.PositiveIntegerField(default=0)
    # Erasure: {store: rows changed}; `kept`: [{"record", "why", "until"}].
    redacted = models.JSONField(default=dict, blank=True)
    kept = models.JSONField(default=list, blank=True)

    objects = NeverDeletedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["client", "customer_id"])]
        permissions = [
            ("export_privacyrequest", "Can export a customer's data"),
            ("erase_privacyrequest", "Can erase a customer's personal data"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.customer_id} ({self.created_at:%Y-%m-%d})"

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PrivacyRecordDeletion("privacy requests are never deleted")


class PrivacyRequestAudit(audited(PrivacyRequest, app_label="privacy")):
    """Nothing excluded: a request holds no name, phone or address."""


class Redaction(models.Model):
    """One record redacted: an order with every copy of its personal data, a
    prescription, or an order's H1 register rows. An order or a prescription is redacted
    once (the constraint); register rows may come due at different times."""

    kind = models.CharField(max_length=12, choices=RedactionKind.choices)
    subject_id = models.UUIDField()
    cause = models.CharField(max_length=10, choices=RedactionCause.choices)
    redacted_at = models.DateTimeField(db_index=True)
    # {store: rows changed}
    rows = models.JSONField(default=dict, blank=True)
    request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = NeverDeletedQuerySet.as_manager()

    class Meta:
        ordering = ["-redacted_at", "pk"]
        indexes = [models.Index(fields=["subject_id", "kind"])]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject_id"],
                condition=Q(kind__in=[RedactionKind.ORDER, RedactionKind.PRESCRIPTION]),
                name="redaction_once_per_order_or_prescription",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject_id} ({self.cause}, {self.redacted_at:%Y-%m-%d})"

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PrivacyRecordDeletion("redaction records are never deleted")
