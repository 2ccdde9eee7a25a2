"""The pharmacist's desk: the review queue (longest wait first, against the SLA, with who
is on each), claims so that two pharmacists never review one prescription, the review page
(the image beside the lines, a decision per line), and the Schedule H1 register."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Sequence
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.forms import BoundField
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from inventory.selectors import product_substitutes
from prescriptions.enums import LineDecision, LineRejection, PrescriptionStatus
from prescriptions.models import Dispensation, H1RegisterEntry, Prescription, PrescriptionItem
from prescriptions.selectors import (
    prescription_review_entry,
    prescription_review_queue,
)
from prescriptions.services import (
    PARTIAL,
    SUBSTITUTE,
    AlreadyReviewed,
    InvalidSubstitute,
    LineReview,
    SubstitutionTarget,
    UnknownLine,
    prescription_claim,
    prescription_review,
    prescription_substitution_targets,
    prescription_unclaim,
)

PENDING = PrescriptionStatus.PENDING_REVIEW
APPROVED, REJECTED = PrescriptionStatus.APPROVED, PrescriptionStatus.REJECTED


def _short(prescription_id: Any) -> str:
    return str(prescription_id)[:8]


class PrescriptionItemInline(admin.TabularInline):
    model = PrescriptionItem
    extra = 0
    can_delete = False
    fields = ("sku", "quantity", "dispensed_quantity", "decision", "rejection_reason")
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


# The review page's buttons: (decision, label, access key). The access keys are the
# browser's (Alt+key, or Alt+Shift+key in Firefox).
DECISION_BUTTONS = (
    (APPROVED, "Approve all", "a"),
    (REJECTED, "Reject all", "r"),
    (PARTIAL, "Decide per line", "s"),
)
LINE_CHOICES = [(LineDecision.APPROVED, "Approve"), (LineDecision.REJECTED, "Reject")]
REASON_CHOICES = [("", "— reason —"), *LineRejection.choices]


class ReviewForm(NoteForm):
    """One prescription's review: the button pressed (`decision`), a note, and a decision
    and reason per line. "Decide per line" takes the lines as set; "Reject all" keeps the
    reasons given (a line without one is rejected as `other`); "Approve all" ignores them."""

    decision = forms.ChoiceField(choices=[(value, label) for value, label, _ in DECISION_BUTTONS])

    def __init__(
        self,
        *args: Any,
        items: list[PrescriptionItem],
        targets: Sequence[SubstitutionTarget] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.items = items
        for item in items:
            # Only what may stand in for the line in each order waiting on it: same
            # composition and schedule, sellable stock where that order goes.
            options = [
                (
                    f"{target.order_id}|{substitute.sku}",
                    f"{target.order_number}: {substitute.sku} ({substitute.name}, "
                    f"₹{substitute.price})",
                )
                for target in targets
                if target.sku == item.sku
                for substitute in product_substitutes(
                    sku=item.sku,
                    pincode=target.pincode,
                    center=target.center,
                    quantity=target.quantity,
                )
            ]
            if options:
                self.fields[self._substitute_field(item)] = forms.ChoiceField(
                    label=f"Offer instead of {item.sku}",
                    choices=[("", "— no substitute —"), *options],
                    required=False,
                )
        for index, item in enumerate(items):
            decision = forms.ChoiceField(
                label=f"{item.sku} × {item.quantity}",
                choices=LINE_CHOICES,
                required=False,  # absent (a bare "approve" post): approved
                initial=LineDecision.APPROVED,
            )
            if index == 0:
                # The pharmacist starts on the first line, without reaching for the mouse.
                decision.widget.attrs["autofocus"] = True
            self.fields[self._decision_field(item)] = decision
            self.fields[self._reason_field(item)] = forms.ChoiceField(
                label=f"Why {item.sku} is rejected", choices=REASON_CHOICES, required=False
            )
        if not items:
            self.fields["note"].widget.attrs["autofocus"] = True

    @staticmethod
    def _decision_field(item: PrescriptionItem) -> str:
        return f"line-{item.pk}-decision"

    @staticmethod
    def _reason_field(item: PrescriptionItem) -> str:
        return f"line-{item.pk}-reason"

    @staticmethod
    def _substitute_field(item: PrescriptionItem) -> str:
        return f"line-{item.pk}-substitute"

    def _substitute(self, item: PrescriptionItem) -> LineReview | None:
        """The substitute offered for the line's order, if one was picked."""
        picked = self.cleaned_data.get(self._substitute_field(item)) or ""
        if not picked:
            return None
        order_id, substitute_sku = picked.split("|", 1)
        return LineReview(
            sku=item.sku,
            decision=SUBSTITUTE,
            substitute_sku=substitute_sku,
            order_id=uuid.UUID(order_id),
        )

    def _line(self, item: PrescriptionItem) -> tuple[str, str]:
        decision = self.cleaned_data.get(self._decision_field(item)) or LineDecision.APPROVED
        return decision, self.cleaned_data.get(self._reason_field(item)) or ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("decision") == PARTIAL:
            for item in self.items:
                decision, reason = self._line(item)
                if decision == LineDecision.REJECTED and not reason:
                    self.add_error(self._reason_field(item), "Say why this line is rejected.")
        return cleaned

    def line_reviews(self) -> list[LineReview]:
        """The lines as `prescription_review` takes them, for the button pressed."""
        decision = self.cleaned_data["decision"]
        reviews = []
        for item in self.items:
            line, reason = self._line(item)
            substitute = self._substitute(item)
            if decision == APPROVED or (decision == PARTIAL and line == LineDecision.APPROVED):
                # An approved line may come with a substitute offered for an order's line.
                if substitute is not None:
                    reviews.append(substitute)
                elif decision == PARTIAL:
                    reviews.append(LineReview(sku=item.sku, decision=line))
            elif decision == REJECTED:
                if reason:
                    reviews.append(LineReview(sku=item.sku, decision=REJECTED, reason=reason))
            else:
                kept_reason = reason if line == LineDecision.REJECTED else ""
                reviews.append(LineReview(sku=item.sku, decision=line, reason=kept_reason))
        return reviews

    def rows(self) -> list[tuple[PrescriptionItem, BoundField, BoundField, BoundField | None]]:
        return [
            (
                item,
                self[self._decision_field(item)],
                self[self._reason_field(item)],
                self[self._substitute_field(item)]
                if self._substitute_field(item) in self.fields
                else None,
            )
            for item in self.items
        ]


def prescription_image_html(prescription: Prescription) -> SafeString | str:
    """The image inline (JPEG, PNG) or the PDF embedded, through the permission-checked
    admin view: never a public media URL."""
    if not prescription.image:
        return "no image uploaded"
    url = reverse("admin:prescriptions_prescription_image", args=[prescription.pk])
    if prescription.image.name.lower().endswith(".pdf"):
        return format_html(
            '<object data="{}" type="application/pdf" class="rx-image" height="800"'
            ' aria-label="the prescription (PDF)"><a href="{}">Open the PDF</a></object>'
            '<p><a href="{}" target="_blank">Open the PDF in a new tab</a></p>',
            url,
            url,
            url,
        )
    return format_html(
        '<a href="{}" target="_blank"><img src="{}" class="rx-image"'
        ' alt="the prescription as uploaded"></a>',
        url,
        url,
    )


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
        "claimed_by",
        "review_link",
    )
    list_filter = ("status", "issued_on", "created_at")
    search_fields = ("id", "customer_id", "patient_name", "doctor_name", "doctor_registration_no")
    list_select_related = ("claimed_by",)
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
        "max_dispenses",
        "claimed_by",
        "claimed_at",
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
        # Pending first, oldest upload first (the queue page orders by the orders' wait).
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
        return _short(prescription.pk)

    @admin.display(description="")
    def review_link(self, prescription: Prescription) -> str:
        if prescription.status != PENDING:
            return "-"
        url = reverse("admin:prescriptions_prescription_review", args=[prescription.pk])
        return format_html('<a class="button" href="{}">Review</a>', url)

    @admin.display(description="prescription image")
    def image_preview(self, prescription: Prescription) -> str:
        return prescription_image_html(prescription)

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

    def get_urls(self) -> list[URLPattern]:
        views = {
            "queue": ("queue/", self.queue_view),
            "review": ("<uuid:prescription_id>/review/", self.review_view),
            "claim": ("<uuid:prescription_id>/claim/", self.claim_view),
            "unclaim": ("<uuid:prescription_id>/unclaim/", self.unclaim_view),
            "image": ("<uuid:prescription_id>/image/", self.image_view),
        }
        urls = [
            path(route, self.admin_site.admin_view(view), name=f"prescriptions_prescription_{name}")
            for name, (route, view) in views.items()
        ]
        return urls + super().get_urls()

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "sla_minutes": settings.COT_REVIEW_SLA_SECONDS // 60,
            **extra,
        }

    def queue_view(self, request: HttpRequest) -> HttpResponse:
        """Pending prescriptions, the longest wait first: what waits on each, for how long
        against the SLA, and who is on it. Anyone who may view prescriptions sees it;
        pharmacists claim and review from it."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        context = self._context(
            request,
            "Review queue",
            entries=prescription_review_queue(now=now),
            now=now,
            can_review=self.has_review_permission(request),
        )
        return TemplateResponse(request, "admin/prescriptions/queue.html", context)

    def image_view(self, request: HttpRequest, prescription_id: Any) -> FileResponse:
        """The image is medical data: served to staff who may view prescriptions, never
        from a public media URL, and never kept in a shared cache."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        prescription = get_object_or_404(Prescription, pk=prescription_id)
        if not prescription.image:
            raise Http404("no image")
        response = FileResponse(prescription.image.open("rb"))
        response["Cache-Control"] = "private, no-store"
        # The review page embeds a PDF in an <object>: allowed from this site only.
        response["X-Frame-Options"] = "SAMEORIGIN"
        return response

    def _queue_url(self) -> str:
        return reverse("admin:prescriptions_prescription_queue")

    def _refuse(self, request: HttpRequest, prescription_id: Any) -> None:
        """Say why this pharmacist may not decide the prescription: decided already, or
        another pharmacist holds it."""
        current = (
            Prescription.objects.select_related("reviewed_by", "claimed_by")
            .filter(pk=prescription_id)
            .first()
        )
        if current is None:
            raise Http404("no such prescription")
        label = f"Prescription {_short(current.pk)}"
        if current.status != PENDING:
            when = timezone.localtime(current.reviewed_at) if current.reviewed_at else None
            self.message_user(
                request,
                f"{label} was already decided by {current.reviewed_by or 'someone'}"
                f" ({current.get_status_display().lower()}"
                + (f", {when:%Y-%m-%d %H:%M}" if when else "")
                + "): nothing was changed.",
                messages.WARNING,
            )
        else:
            since = timezone.localtime(current.claimed_at) if current.claimed_at else None
            minutes = settings.COT_REVIEW_SLA_SECONDS // 60
            self.message_user(
                request,
                f"{label} is being reviewed by {current.claimed_by}"
                + (f" since {since:%H:%M}" if since else "")
                + f"; it can be taken over once the claim is {minutes} minutes old."
                " Nothing was changed.",
                messages.ERROR,
            )

    def claim_view(self, request: HttpRequest, prescription_id: Any) -> HttpResponse:
        """Take the prescription (POST): its review page next, or back to the queue with
        the reason it is not yours."""
        if not self.has_review_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if prescription_claim(prescription_id=prescription_id, user=request.user):
            return HttpResponseRedirect(
                reverse("admin:prescriptions_prescription_review", args=[prescription_id])
            )
        self._refuse(request, prescription_id)
        return HttpResponseRedirect(self._queue_url())

    def unclaim_view(self, request: HttpRequest, prescription_id: Any) -> HttpResponse:
        """Give the prescription back to the queue (POST), undecided."""
        if not self.has_review_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if prescription_unclaim(prescription_id=prescription_id, user=request.user):
            self.message_user(
                request,
                f"Prescription {_short(prescription_id)} is back in the queue.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                f"You were not reviewing prescription {_short(prescription_id)}.",
                messages.WARNING,
            )
        return HttpResponseRedirect(self._queue_url())

    def review_view(self, request: HttpRequest, prescription_id: Any) -> HttpResponse:
        if not self.has_review_permission(request):
            raise PermissionDenied
        prescription = get_object_or_404(
            Prescription.objects.select_related("claimed_by", "reviewed_by"), pk=prescription_id
        )
        items = list(prescription.items.order_by("pk"))
        targets = (
            prescription_substitution_targets(prescription_id=prescription.pk)
            if prescription.status == PENDING
            else []
        )
        form = ReviewForm(request.POST or None, items=items, targets=targets)
        if (
            request.method == "POST"
            and form.is_valid()
            and self._decide(request, form, prescription)
        ):
            return HttpResponseRedirect(self._queue_url())
        now = timezone.now()
        pending = prescription.status == PENDING
        entry = prescription_review_entry(prescription=prescription, now=now) if pending else None
        held_by_other = (
            entry is not None
            and prescription.claimed_by_id not in (None, request.user.pk)
            and not entry.claim_stale
        )
        context = self._context(
            request,
            f"Review prescription {_short(prescription.pk)}",
            prescription=prescription,
            entry=entry,
            now=now,
            form=form,
            rows=form.rows(),
            buttons=DECISION_BUTTONS,
            image=prescription_image_html(prescription),
            held_by_other=held_by_other,
            mine=prescription.claimed_by_id == request.user.pk,
        )
        return TemplateResponse(request, "admin/prescriptions/review.html", context)

    def _decide(self, request: HttpRequest, form: ReviewForm, prescription: Prescription) -> bool:
        """Record the decision as this pharmacist's. False: the form is shown again with
        what is wrong; True: done, or not theirs to decide (a message says which)."""
        # The claim is the pharmacist's right to decide: taken here if nobody holds it, and
        # refused when another pharmacist does, so that two never both review one.
        if not prescription_claim(prescription_id=prescription.pk, user=request.user):
            self._refuse(request, prescription.pk)
            return True
        try:
            decided = prescription_review(
                prescription_id=prescription.pk,
                reviewer=request.user,
                decision=form.cleaned_data["decision"],
                note=form.cleaned_data["note"],
                lines=form.line_reviews(),
            )
        except AlreadyReviewed:
            self._refuse(request, prescription.pk)
            return True
        except (UnknownLine, InvalidSubstitute, ValueError) as error:
            form.add_error(None, str(error))
            return False
        struck = [
            f"{sku} ({LineRejection(reason).label.lower()})"
            for sku, reason in decided.items.filter(decision=LineDecision.REJECTED)
            .order_by("pk")
            .values_list("sku", "rejection_reason")
        ]
        outcome = decided.get_status_display().lower()
        if struck and decided.status == APPROVED:
            outcome += "; struck out: " + ", ".join(struck)
        self.message_user(
            request, f"Prescription {_short(decided.pk)}: {outcome}.", messages.SUCCESS
        )
        return True

    def _review(
        self, request: HttpRequest, prescriptions: list[Prescription], decision: str, note: str
    ) -> None:
        done, skipped, held = 0, 0, 0
        for prescription in prescriptions:
            if prescription.status != PENDING:
                skipped += 1
                continue
            # A prescription another pharmacist is reviewing is theirs to decide.
            if not prescription_claim(prescription_id=prescription.pk, user=request.user):
                current = Prescription.objects.filter(pk=prescription.pk).values("status")
                if current.get()["status"] == PENDING:
                    held += 1
                else:
                    skipped += 1
                continue
            try:
                prescription_review(
                    prescription_id=prescription.pk,
                    reviewer=request.user,
                    decision=decision,
                    note=note,
                )
            except AlreadyReviewed:
                skipped += 1
                continue
            done += 1
        verb = "Approved" if decision == APPROVED else "Rejected"
        text = f"{verb} {done}; already reviewed, left alone: {skipped}."
        if held:
            text += f" Being reviewed by another pharmacist, left alone: {held}."
        self.message_user(request, text, messages.WARNING if held else messages.SUCCESS)

    def _review_action(
        self, request: HttpRequest, queryset: QuerySet[Prescription], decision: str
    ) -> HttpResponse | None:
        form = NoteForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            self._review(request, list(queryset), decision, form.cleaned_data["note"])
            return None
        context = self._context(
            request,
            f"{'Approve' if decision == APPROVED else 'Reject'} {queryset.count()} prescription(s)",
            prescriptions=list(queryset),
            form=form,
            action=request.POST.get("action"),
            selected=request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        )
        return TemplateResponse(request, "admin/prescriptions/review_selected.html", context)

    @admin.action(
        description="Approve selected prescriptions (with a note)", permissions=["review"]
    )
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Prescription]) -> Any:
        return self._review_action(request, queryset, APPROVED)

    @admin.action(description="Reject selected prescriptions (with a note)", permissions=["review"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Prescription]) -> Any:
        return self._review_action(request, queryset, REJECTED)


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
