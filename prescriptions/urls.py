from django.urls import path

from prescriptions.api import PrescriptionCreateApi, PrescriptionDetailApi, PrescriptionReviewApi

urlpatterns = [
    path("prescriptions/", PrescriptionCreateApi.as_view(), name="prescription-create"),
    path(
        "prescriptions/<uuid:prescription_id>/",
        PrescriptionDetailApi.as_view(),
        name="prescription-detail",
    ),
    path(
        "prescriptions/<uuid:prescription_id>/review/",
        PrescriptionReviewApi.as_view(),
        name="prescription-review",
    ),
]
