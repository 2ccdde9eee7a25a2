from __future__ import annotations

import uuid

from core.models import ApiClient
from prescriptions.enums import PrescriptionStatus
from prescriptions.models import Prescription


def prescription_get_for_client(
    *, client: ApiClient, prescription_id: uuid.UUID
) -> Prescription | None:
    return (
        Prescription.objects.filter(client=client, pk=prescription_id)
        .prefetch_related("items")
        .first()
    )


def prescription_decided_ids(*, prescription_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    return set(
        Prescription.objects.filter(pk__in=prescription_ids)
        .exclude(status=PrescriptionStatus.PENDING_REVIEW)
        .values_list("pk", flat=True)
    )
