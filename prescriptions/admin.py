from django.contrib import admin
from django.http import HttpRequest

from prescriptions.models import Prescription, PrescriptionItem


class PrescriptionItemInline(admin.TabularInline):
    model = PrescriptionItem
    extra = 0
    can_delete = False
    readonly_fields = ("dispensed_quantity",)


@admin.register(Prescription)
class PrescriptionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "patient_name",
        "customer_id",
        "doctor_name",
        "issued_on",
        "status",
        "created_at",
    )
    list_filter = ("status", "issued_on")
    search_fields = ("id", "customer_id", "patient_name", "doctor_registration_no")
    ordering = ("created_at",)
    readonly_fields = ("client", "reviewed_by", "reviewed_at", "created_at", "updated_at")
    inlines = [PrescriptionItemInline]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # regulatory record: never deleted
