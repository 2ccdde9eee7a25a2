"""A customer's data rights for ops: look a customer up (by client and customer id, or by
one of their order numbers), download everything held about them, or erase it; and the
record of every export and erasure done."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from core.admin import ReadOnlyAdminMixin
from core.models import ApiClient
from privacy import selectors
from privacy.models import PrivacyRequest
from privacy.services import (
    CustomerInProgress,
    customer_erase,
    customer_erase_preview,
    customer_export,
)
from privacy.shredders import SHREDDERS, PrescriptionShredder


class CustomerForm(forms.Form):
    client = forms.ModelChoiceField(
        queryset=ApiClient.objects.order_by("name"),
        to_field_name="name",
        help_text="The API client the customer ordered through.",
    )
    customer_id = forms.CharField(
        max_length=64, help_text="The customer id that client sends on its orders."
    )


class OrderNumberForm(forms.Form):
    order = forms.CharField(max_length=20, label="Order number", help_text="e.g. COT-00001234")


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "client",
        "customer_id",
        "requested_by",
        "orders",
        "prescriptions",
    )
    list_filter = ("kind", "client")
    search_fields = ("customer_id", "requested_by")
    fields = (
        "kind",
        "client",
        "customer_id",
        "requested_by",
        "created_at",
        "orders",
        "prescriptions",
        "redacted_rows",
        "kept_records",
    )
    readonly_fields = fields
    change_list_template = "admin/privacy/privacyrequest/change_list.html"

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("privacy.export_privacyrequest")

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("privacy.erase_privacyrequest")

    @admin.display(description="rows redacted, per store")
    def redacted_rows(self, obj: PrivacyRequest) -> str:
        return (
            format_html_join(", ", "{}: {}", sorted(obj.redacted.items()))
            or "nothing (an export, or nothing left to redact)"
        )

    @admin.display(description="kept, as the law requires")
    def kept_records(self, obj: PrivacyRequest) -> str:
        if not obj.kept:
            return "nothing"
        items = format_html_join(
            "",
            "<li>{}: {}, until {}</li>",
            ((k["record"], k["why"], k["until"]) for k in obj.kept),
        )
        return format_html("<ul>{}</ul>", items)

    # --- the customer page ----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("customer/", view(self.customer_view), name="privacy_customer"),
            path("customer/export/", view(self.export_view), name="privacy_customer_export"),
            path("customer/erase/", view(self.erase_view), name="privacy_customer_erase"),
            *super().get_urls(),
        ]

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            **extra,
        }

    def _customer(self, data: Any) -> tuple[ApiClient, str] | None:
        form = CustomerForm(data)
        if not form.is_valid():
            return None
        return form.cleaned_data["client"], form.cleaned_data["customer_id"]

    def customer_view(self, request: HttpRequest) -> HttpResponse:
        """Find a customer and see what is held about them, with the export and erase
        buttons (shown to those who may use them)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if "order" in request.GET:
            by_number = OrderNumberForm(request.GET)
            found = by_number.is_valid() and selectors.customer_find(
                order_number=by_number.cleaned_data["order"]
            )
            if found:
                client, customer_id = found
                query = urlencode({"client": client.name, "customer_id": customer_id})
                return HttpResponseRedirect(f"{reverse('admin:privacy_customer')}?{query}")
            self.message_user(request, "No order with that number.", messages.WARNING)
        searched = "client" in request.GET or "customer_id" in request.GET
        form = CustomerForm(request.GET if searched else None)
        context = self._context(
            request,
            "Customer data",
            form=form,
            order_form=OrderNumberForm(),
            can_export=self.has_export_permission(request),
            can_erase=self.has_erase_permission(request),
        )
        if searched and form.is_valid():
            client, customer_id = form.cleaned_data["client"], form.cleaned_data["customer_id"]
            holdings, held_back = customer_erase_preview(client=client, customer_id=customer_id)
            context.update(
                holdings=holdings,
                kept=held_back,
                prescriptions=[
                    (p, PrescriptionShredder.keep_until(p)) for p in holdings.prescriptions
                ],
                erase_query=urlencode({"client": client.name, "customer_id": customer_id}),
                requests=PrivacyRequest.objects.filter(client=client, customer_id=customer_id)[:20],
            )
        return TemplateResponse(request, "admin/privacy/customer.html", context)

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """POST: the customer's export as a JSON file (recorded)."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:privacy_customer"))
        customer = self._customer(request.POST)
        if customer is None:
            self.message_user(request, "Name a client and a customer id.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:privacy_customer"))
        client, customer_id = customer
        document = customer_export(
            client=client, customer_id=customer_id, by=f"ops:{request.user.get_username()}"
        )
        response = HttpResponse(
            json.dumps(document, indent=2, ensure_ascii=False),
            content_type="application/json; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%d")
        safe_id = "".join(c if c.isalnum() or c in "-_" else "_" for c in customer_id)
        response["Content-Disposition"] = (
            f'attachment; filename="cot-{client.name}-{safe_id}-{stamp}.json"'
        )
        response["Cache-Control"] = "private, no-store"
        return response

    def erase_view(self, request: HttpRequest) -> HttpResponse:
        """GET: what an erasure would redact and keep; POST (confirmed): erase."""
        if not self.has_erase_permission(request):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        customer = self._customer(data)
        if customer is None:
            self.message_user(request, "Name a client and a customer id.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:privacy_customer"))
        client, customer_id = customer
        if request.method == "POST" and data.get("confirm") == "yes":
            try:
                done = customer_erase(
                    client=client,
                    customer_id=customer_id,
                    by=f"ops:{request.user.get_username()}",
                )
            except CustomerInProgress as exc:
                self.message_user(request, f"Not erased: {exc}", messages.ERROR)
            else:
                kept = "; ".join(f"{k['record']} (until {k['until']})" for k in done.kept)
                self.message_user(
                    request,
                    f"Erased the personal data of {customer_id} ({client.name}): "
                    f"{done.orders} orders, {done.prescriptions} prescriptions. "
                    + (f"Kept, as the law requires: {kept}." if kept else "Nothing kept."),
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:privacy_privacyrequest_change", args=[done.pk])
                )
        holdings, held_back = customer_erase_preview(client=client, customer_id=customer_id)
        return TemplateResponse(
            request,
            "admin/privacy/erase_confirm.html",
            self._context(
                request,
                "Erase customer data",
                holdings=holdings,
                kept=held_back,
                client=client,
                customer_id=customer_id,
                stores=[s for s in SHREDDERS if s.redacts],
                unconfirmed=request.method == "POST",
            ),
        )
