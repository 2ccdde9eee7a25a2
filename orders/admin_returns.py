"""The returns desk for ops: find a return, approve it (the reverse pickup is booked),
reject it with a note, or receive it after inspecting each line (restock or write off)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from core.http import ExternalError
from logistics.services.returns import PickupRefused
from orders.models import Return, ReturnLine, ReturnStatus
from orders.services.returns import (
    INSPECTION_WRITE_OFF_REASONS,
    InvalidReturnTransition,
    LineInspection,
    ReturnRefundRefused,
    return_approve,
    return_receive,
    return_reject,
)

RESTOCK, WRITE_OFF = "restock", "write_off"


class RejectForm(forms.Form):
    note = forms.CharField(
        max_length=500, help_text="Why, in a few words: kept on the order's timeline."
    )


class InspectionForm(forms.Form):
    """Ops' verdict on one line of a received return."""

    verdict = forms.ChoiceField(
        choices=[(RESTOCK, "Restock (if still sellable)"), (WRITE_OFF, "Write off")],
        initial=RESTOCK,
        widget=forms.RadioSelect,
    )
    write_off_reason = forms.ChoiceField(
        choices=[("", "—"), *((r.value, r.label) for r in INSPECTION_WRITE_OFF_REASONS)],
        required=False,
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("verdict") == WRITE_OFF and not data.get("write_off_reason"):
            self.add_error("write_off_reason", "Say why the units are written off.")
        if data.get("verdict") == RESTOCK:
            data["write_off_reason"] = ""
        return data


class ReceiveNoteForm(forms.Form):
    note = forms.CharField(
        max_length=500, required=False, help_text="Optional: what the inspection found."
    )


class ReturnLineInline(admin.TabularInline):
    model = ReturnLine
    extra = 0
    can_delete = False
    fields = ("sku", "quantity", "unit_price", "amount", "outcome", "write_off_reason", "batches")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _actor(request: HttpRequest) -> str:
    return f"ops:{request.user.get_username()}"


class ReturnAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "order_link",
        "status",
        "reason",
        "refund_amount",
        "pickup_partner",
        "pickup_awb",
        "created_at",
    )
    list_filter = ("status", "reason", "created_at")
    search_fields = ("order__number", "=order__id", "=id", "pickup_awb", "order__customer_id")
    list_select_related = ("order",)
    date_hierarchy = "created_at"
    actions = ["approve_returns", "reject_returns", "receive_returns"]
    fieldsets = [
        (None, {"fields": ("id", "order_link", "status", "reason", "note", "refund_amount")}),
        ("Pickup", {"fields": ("pickup_partner", "pickup_awb", "pickup_date")}),
        ("Decision", {"fields": ("decided_by", "decision_note", "refund_vpa")}),
        ("Times", {"fields": ("created_at", "updated_at")}),
    ]
    inlines = [ReturnLineInline]

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        # A return moves only through its actions (the services), never by editing it.
        return [field for _, options in self.fieldsets for field in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # customers ask for returns through the API

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # a return is part of the order's record

    @admin.display(description="return")
    def short_id(self, ret: Return) -> str:
        return str(ret.pk)[:8]

    @admin.display(description="order", ordering="order__number")
    def order_link(self, ret: Return) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:orders_order_change", args=[ret.order_id]),
            ret.order.number,
        )

    @admin.action(description="Approve selected returns (book the pickup)", permissions=["change"])
    def approve_returns(self, request: HttpRequest, queryset: QuerySet[Return]) -> None:
        approved, refused = 0, []
        for ret in queryset.select_related("order").order_by("created_at"):
            label = f"{ret.order.number}/{str(ret.pk)[:8]}"
            try:
                return_approve(return_id=ret.pk, by=_actor(request))
                approved += 1
            except InvalidReturnTransition as exc:
                refused.append(f"{label} ({exc.current})")
            except PickupRefused as exc:
                refused.append(f"{label} (pickup refused by {exc.partner})")
            except ExternalError:
                refused.append(f"{label} (courier unreachable: approve again later)")
        self.message_user(request, f"Approved: {approved}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not approved: " + ", ".join(refused), messages.ERROR)

    @admin.action(description="Reject selected returns", permissions=["change"])
    def reject_returns(
        self, request: HttpRequest, queryset: QuerySet[Return]
    ) -> HttpResponse | None:
        returns = list(queryset.select_related("order").order_by("created_at"))
        rejectable = [r for r in returns if r.status == ReturnStatus.REQUESTED]
        form = RejectForm(request.POST if request.POST.get("confirm") == "yes" else None)
        if not form.is_valid():
            return TemplateResponse(
                request,
                "admin/orders/return/reject_confirm.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Reject returns?",
                    "opts": self.model._meta,
                    "form": form,
                    "rejectable": rejectable,
                    "skipped": [r for r in returns if r.status != ReturnStatus.REQUESTED],
                    "selected": [r.pk for r in returns],
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        rejected, refused = 0, []
        for ret in rejectable:
            try:
                return_reject(return_id=ret.pk, by=_actor(request), note=form.cleaned_data["note"])
                rejected += 1
            except InvalidReturnTransition as exc:
                refused.append(f"{ret.order.number}/{str(ret.pk)[:8]} ({exc.current})")
        self.message_user(request, f"Rejected: {rejected}.", messages.SUCCESS)
        if refused:
            self.message_user(
                request, "Moved on meanwhile, not rejected: " + ", ".join(refused), messages.ERROR
            )
        return None

    @admin.action(
        description="Receive selected returns (inspect each line)", permissions=["change"]
    )
    def receive_returns(
        self, request: HttpRequest, queryset: QuerySet[Return]
    ) -> HttpResponse | None:
        """One form per line (restock, or write off with a reason); the refund is asked
        for once the units are taken back."""
        returns = list(
            queryset.select_related("order").prefetch_related("lines").order_by("created_at")
        )
        receivable = [r for r in returns if r.status == ReturnStatus.APPROVED]
        posted = request.POST if request.POST.get("confirm") == "yes" else None
        note_form = ReceiveNoteForm(posted)
        sections = [
            (
                ret,
                [
                    (line, InspectionForm(posted, prefix=f"line-{line.pk}"))
                    for line in ret.lines.all()
                ],
            )
            for ret in receivable
        ]
        forms_valid = note_form.is_valid() and all(
            form.is_valid() for _, lines in sections for _, form in lines
        )
        if posted is None or not forms_valid or not receivable:
            return TemplateResponse(
                request,
                "admin/orders/return/receive.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Receive returns",
                    "opts": self.model._meta,
                    "note_form": note_form,
                    "sections": sections,
                    "skipped": [r for r in returns if r.status != ReturnStatus.APPROVED],
                    "selected": [r.pk for r in returns],
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        received, refused = 0, []
        for ret, lines in sections:
            inspections = [
                LineInspection(
                    sku=line.sku, write_off_reason=form.cleaned_data["write_off_reason"] or None
                )
                for line, form in lines
            ]
            label = f"{ret.order.number}/{str(ret.pk)[:8]}"
            try:
                return_receive(
                    return_id=ret.pk,
                    by=_actor(request),
                    inspections=inspections,
                    note=note_form.cleaned_data["note"],
                )
                received += 1
            except InvalidReturnTransition as exc:
                refused.append(f"{label} ({exc.current})")
            except ReturnRefundRefused as exc:
                refused.append(f"{label} (refund refused: {exc})")
        self.message_user(request, f"Received: {received}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not received: " + ", ".join(refused), messages.ERROR)
        return None


admin.site.register(Return, ReturnAdmin)
