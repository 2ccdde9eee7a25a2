"""The pharmacist's desk: a review queue, the prescription with its image beside it,
approve/reject with a note, and the Schedule H1 register."""

from __future__ import annotations

import csv
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from prescriptions.enums import PrescriptionStatus
from prescriptions.models import Dispensation, H1RegisterEntry, Prescription, PrescriptionItem
from prescriptions.services import AlreadyReviewed, prescription_review

PENDING = PrescriptionStatus.PENDING_REVIEW


class PrescriptionItemInline(admin.TabularInline):
    model = PrescriptionItem
    extra = 0
    can_delete = False
    fields = ("sku", "quantity", "dispensed_quantity")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _returned_note(dispensation: Dispensation) -> str:
    if dispensation.returned:
        return " (returned)"
    if dispensation.returned_quantity:
        return f" ({dispensation.returned_quantity} returned)"
    return ""


class NoteForm(forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000
    )


class ReviewForm(NoteForm):
    decision = forms.ChoiceField(
        choices=[(PrescriptionStatus.APPROVED, "Approve"), (PrescriptionStatus.REJECTED, "Reject")],
        widget=forms.RadioSelect,
    )
    field_order = ["decision", "note"]


@admin.register(Prescription)
class PrescriptionAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "status",
        "patient_name",
        "customer_id",
        "doctor_name",
        "issued_on",
        "created_at",
        "review_link",
    )
    list_filter = ("status", "issued_on", "created_at")
    search_fields = ("id", "customer_id", "patient_name", "doctor_name", "doctor_registration_no")
    actions = ["approve_selected", "reject_selected"]
    fields = (
        "status",
        "review_link",
        "image_preview",
        "patient_name",
        "customer_id",
        "doctor_name",
        "doctor_registration_no",
        "issued_on",
        "reviewed_by",
        "reviewed_at",
        "review_note",
        "orders",
        "client",
        "created_at",
    )
    readonly_fields = fields
    inlines = [PrescriptionItemInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Prescription]:
        # The review queue: pending first, oldest first.
        return (
            super()
            .get_queryset(request)
            .annotate(
                pending_first=Case(
                    When(status=PENDING, then=Value(0)),
                    default=Value(1),
                    output_field=IntegerField(),
                )
            )
            .order_by("pending_first", "created_at")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # prescriptions arrive through the API, with the client's upload

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # regulatory record: never deleted

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("prescriptions.review_prescription")

    @admin.display(description="prescription")
    def short_id(self, prescription: Prescription) -> str:
        return str(prescription.pk)[:8]

    @admin.display(description="")
    def review_link(self, prescription: Prescription) -> str:
        if prescription.status != PENDING:
            return "-"
        url = reverse("admin:prescriptions_prescription_review", args=[prescription.pk])
        return format_html('<a class="button" href="{}">Review</a>', url)

    @admin.display(description="prescription image")
    def image_preview(self, prescription: Prescription) -> str:
        if not prescription.image:
            return "no image uploaded"
        url = reverse("admin:prescriptions_prescription_image", args=[prescription.pk])
        if prescription.image.name.endswith(".pdf"):
            return format_html(
                '<embed src="{}" type="application/pdf" width="700" height="800"><br>'
                '<a href="{}" target="_blank">open the PDF</a>',
                url,
                url,
            )
        return format_html(
            '<a href="{}" target="_blank"><img src="{}" style="max-width:700px"></a>', url, url
        )

    @admin.display(description="orders and dispensed quantities")
    def orders(self, prescription: Prescription) -> str:
        dispensations = Dispensation.objects.filter(item__prescription=prescription).select_related(
            "item"
        )
        if not dispensations:
            return "none yet"
        return format_html_join(
            "",
            '<div><a href="{}">order {}</a>: {} × {}{}</div>',
            (
                (
                    reverse("admin:orders_order_change", args=[d.order_id]),
                    str(d.order_id)[:8],
                    d.item.sku,
                    d.quantity,
                    _returned_note(d),
                )
                for d in dispensations
            ),
        )

    def get_urls(self) -> list:
        urls = [
            path(
                "<uuid:prescription_id>/review/",
                self.admin_site.admin_view(self.review_view),
                name="prescriptions_prescription_review",
            ),
            path(
                "<uuid:prescription_id>/image/",
                self.admin_site.admin_view(self.image_view),
                name="prescriptions_prescription_image",
            ),
        ]
        return urls + super().get_urls()

    def image_view(self, request: HttpRequest, prescription_id: Any) -> FileResponse:
        """The image is medical data: served to staff who may view prescriptions, never
        from a public media URL."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        prescription = get_object_or_404(Prescription, pk=prescription_id)
        if not prescription.image:
            raise Http404("no image")
        return FileResponse(prescription.image.open("rb"))

    def review_view(self, request: HttpRequest, prescription_id: Any) -> HttpResponse:
        if not self.has_review_permission(request):
            raise PermissionDenied
        prescription = get_object_or_404(Prescription, pk=prescription_id)
        form = ReviewForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            self._review(request, [prescription], **form.cleaned_data)
            return HttpResponseRedirect(reverse("admin:prescriptions_prescription_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Review prescription {str(prescription.pk)[:8]}",
            "prescriptions": [prescription],
            "form": form,
            "image_preview": self.image_preview(prescription),
        }
        return TemplateResponse(request, "admin/prescriptions/review.html", context)

    def _review(
        self, request: HttpRequest, prescriptions: list[Prescription], decision: str, note: str
    ) -> None:
        done, skipped = 0, 0
        for prescription in prescriptions:
            try:
                prescription_review(
                    prescription_id=prescription.pk,
                    reviewer=request.user,
                    decision=decision,
                    note=note,
                )
                done += 1
            except AlreadyReviewed:
                skipped += 1
        verb = "Approved" if decision == PrescriptionStatus.APPROVED else "Rejected"
        self.message_user(
            request, f"{verb} {done}; already reviewed, left alone: {skipped}.", messages.SUCCESS
        )

    def _review_action(
        self, request: HttpRequest, queryset: QuerySet[Prescription], decision: str
    ) -> HttpResponse | None:
        form = NoteForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            self._review(request, list(queryset), decision, form.cleaned_data["note"])
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{'Approve' if decision == PrescriptionStatus.APPROVED else 'Reject'} "
            f"{queryset.count()} prescription(s)",
            "prescriptions": list(queryset),
            "form": form,
            "action": request.POST.get("action"),
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "admin/prescriptions/review.html", context)

    @admin.action(
        description="Approve selected prescriptions (with a note)", permissions=["review"]
    )
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Prescription]) -> Any:
        return self._review_action(request, queryset, PrescriptionStatus.APPROVED)

    @admin.action(description="Reject selected prescriptions (with a note)", permissions=["review"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Prescription]) -> Any:
        return self._review_action(request, queryset, PrescriptionStatus.REJECTED)


@admin.register(H1RegisterEntry)
class H1RegisterAdmin(admin.ModelAdmin):
    list_display = (
        "recorded_at",
        "order_number",
        "patient_name",
        "doctor_name",
        "doctor_registration_no",
        "drug_name",
        "batch",
        "quantity",
        "entry_type",
        "reference",
    )
    list_filter = ("entry_type", "recorded_at")
    date_hierarchy = "recorded_at"
    search_fields = (
        "order_number",
        "patient_name",
        "doctor_registration_no",
        "sku",
        "batch",
        "reference",
    )
    actions = ["export_csv"]
    readonly_fields = [f.name for f in H1RegisterEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Export selected entries as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[H1RegisterEntry]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="schedule-h1-register.csv"'
        writer = csv.writer(response)
        writer.writerow(
            [
                "date",
                "order number",
                "patient",
                "prescriber",
                "registration no",
                "drug",
                "sku",
                "batch",
                "quantity",
                "entry",
                "reference",
            ]
        )
        for entry in queryset.order_by("recorded_at", "pk"):
            writer.writerow(
                [
                    entry.recorded_at.date().isoformat(),
                    entry.order_number,
                    entry.patient_name,
                    entry.doctor_name,
                    entry.doctor_registration_no,
                    entry.drug_name,
                    entry.sku,
                    entry.batch,
                    entry.quantity,
                    entry.entry_type,
                    entry.reference,
                ]
            )
        return response
