from __future__ import annotations

import datetime

import factory
from django.utils import timezone

from core.tests.factories import ApiClientFactory
from prescriptions.enums import PrescriptionStatus
from prescriptions.models import Prescription, PrescriptionItem


class PrescriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prescription

    client = factory.SubFactory(ApiClientFactory)
    customer_id = "C-1001"
    patient_name = "A. Rao"
    doctor_name = "Dr. B. Iyer"
    doctor_registration_no = "KMC-12345"
    issued_on = factory.LazyFunction(lambda: timezone.localdate() - datetime.timedelta(days=3))
    status = PrescriptionStatus.APPROVED


def prescription_with(items: list[tuple[str, int]], **kwargs: object) -> Prescription:
    prescription = PrescriptionFactory(**kwargs)
    for sku, quantity in items:
        PrescriptionItem.objects.create(prescription=prescription, sku=sku, quantity=quantity)
    return prescription
