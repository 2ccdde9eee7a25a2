"""What ops see of logistics: every shipment with its partner, AWB and tracking status,
every booking request (attempt) with its key and outcome, and the failed deliveries that
need someone to call the courier or the customer."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from logistics.enums import DeliveryFailureReason, ShipmentStatus
from logistics.models import Shipment, ShipmentAttempt, ShipmentItem, ShipmentUpdate
from logistics.services.tracking import APPLIED, shipment_tracking_apply

S = ShipmentStatus


class HandMoveForm(forms.Form):
    """What ops say when they move a shipment as the courier would have."""

    status = forms.ChoiceField(
        choices=[
            (S.PICKED_UP, S.PICKED_UP.label),
            (S.DELIVERED, S.DELIVERED.label),
            (S.DELIVERY_FAILED, S.DELIVERY_FAILED.label),
            (S.RETURNED, S.RETURNED.label),
        ]
    )
    failure_reason = forms.ChoiceField(
        choices=[("", "—"), *DeliveryFailureReason.choices],
        required=False,
        help_text="For a failed delivery: why.",
    )
    note = forms.CharField(
        max_length=500, help_text="Why, in a few words: kept on the order's timeline."
    )
    otp_checked = forms.BooleanField(
        required=False,
        label="Delivery OTP checked",
        help_text="For delivered: I checked the customer's delivery OTP (proof of delivery "
        "for prescription parcels); the timeline's note says so.",
    )

    def __init__(self, *args: object, otp_needed: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Asked only when a selected shipment is delivered against the customer's OTP.
        self.otp_needed = otp_needed
        if not otp_needed:
            del self.fields["otp_checked"]

    def clean(self) -> dict:
        data = super().clean()
        failed = data.get("status") == S.DELIVERY_FAILED
        if failed and not data.get("failure_reason"):
            self.add_error("failure_reason", "Say why the delivery failed.")
        if not failed:
            data["failure_reason"] = ""
        delivered = data.get("status") == S.DELIVERED
        if delivered and self.otp_needed and not data.get("otp_checked"):
            self.add_error(
                "otp_checked",
                "A selected shipment is delivered only against the customer's OTP: check it "
                "with the courier or the customer first.",
            )
        data["otp_checked"] = delivered and bool(data.get("otp_checked"))
        return data


class ShipmentItemInline(admin.TabularInline):
    model = ShipmentItem
    extra = 0
    can_delete = False
    readonly_fields = ("sku", "batch", "quantity")


class ShipmentAttemptInline(admin.TabularInline):
    model = ShipmentAttempt
    extra = 0
    can_delete = False
    fields = ("partner", "idempotency_key", "status", "sends", "response", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ShipmentUpdateInline(admin.TabularInline):
    """The courier's updates that moved the shipment, in the order applied."""

    model = ShipmentUpdate
    extra = 0
    can_delete = False
    fields = ("status", "at", "attempt", "reason", "created_at")
    readonly_fields = fields
    ordering = ("pk",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class NeedsAttentionFilter(admin.SimpleListFilter):
    """The courier's last word is a failed delivery: ops follow up (the order's timeline
    has a `shipment.delivery_failed` event with the attempt and the reason)."""

    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [("failed_deliveries", "Failed deliveries")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Shipment]) -> QuerySet[Shipment]:
        if self.value() == "failed_deliveries":
            return queryset.filter(status=ShipmentStatus.DELIVERY_FAILED)
        return queryset


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = (
        "order_id",
        "center",
        "partner",
        "awb",
        "status",
        "status_at",
        "delivery_attempts",
        "eta",
        "created_at",
    )
    list_filter = (NeedsAttentionFilter, "status", "partner", "center")
    search_fields = ("order_id", "awb")
    readonly_fields = (
        "order_id",
        "center",
        "partner",
        "awb",
        "eta",
        "status",
        "status_at",
        "delivery_attempts",
        "last_failure_reason",
        "delivery_otp",
        "idempotency_key",
    )
    inlines = [ShipmentItemInline, ShipmentUpdateInline, ShipmentAttemptInline]
    actions = ["move_by_hand"]

    def has_move_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("logistics.move_shipment")

    @admin.action(description="Move selected shipments by hand", permissions=["move"])
    def move_by_hand(
        self, request: HttpRequest, queryset: QuerySet[Shipment]
    ) -> HttpResponse | None:
        """As if the courier had said it (picked up, delivered, failed, returned), with a
        reason; the order follows as it would, and its timeline names the staff user. A
        shipment delivered against the customer's OTP is moved to delivered only when the
        staff user says they checked it (the note then says so)."""
        shipments = list(queryset.exclude(awb="").order_by("created_at"))
        form = HandMoveForm(
            request.POST if request.POST.get("confirm") == "yes" else None,
            otp_needed=any(s.delivery_otp for s in shipments),
        )
        if not form.is_valid():
            return TemplateResponse(
                request,
                "admin/logistics/shipment/move_by_hand.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Move shipments by hand",
                    "opts": self.model._meta,
                    "form": form,
                    "shipments": shipments,
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        data = form.cleaned_data
        results: dict[str, list[str]] = {}
        for shipment in shipments:
            attested = data["otp_checked"] and bool(shipment.delivery_otp)
            note = f"{data['note']} (delivery OTP checked by staff)" if attested else data["note"]
            result = shipment_tracking_apply(
                awb=shipment.awb,
                status=data["status"],
                at=timezone.now(),
                reason=data["failure_reason"] or None,
                otp_verified=attested,
                by=f"ops:{request.user.get_username()}",
                note=note,
            )
            results.setdefault(result, []).append(shipment.awb)
        moved = results.pop(APPLIED, [])
        self.message_user(request, f"Moved: {len(moved)}.", messages.SUCCESS)
        for result, awbs in results.items():
            self.message_user(
                request,
                f"Not moved ({result.replace('_', ' ')}): {', '.join(awbs)}",
                messages.WARNING,
            )
        return None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # shipments move only through booking, cancellation and tracking

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
